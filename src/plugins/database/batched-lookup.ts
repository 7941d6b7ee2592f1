/**
 * Look-ups by key that arrive in one turn of the event loop, asked of the database as one statement just after the
 * turn's I/O (`setImmediate`): on PostgreSQL and MySQL a statement is a round trip and the driver's protocol work,
 * which share the two cores with HTTP, and a get by id of fifty clients at once becomes a few statements of many keys
 * instead of fifty of one. `fetch` is given the distinct keys and returns the rows found; `keyOf` says whose each is.
 *
 * The statement runs after every look-up in it was asked for, so each sees every write acknowledged before its
 * request arrived, as a statement of its own would. A statement that fails fails every look-up in it, with its error.
 */
export function batchedLookup<K, R>(fetch: (keys: K[]) => Promise<R[]>, keyOf: (row: R) => K):
  (key: K) => Promise<R | undefined> {
  interface Lookup {
    resolve: (row: R | undefined) => void
    reject: (error: unknown) => void
  }
  let waiting = new Map<K, Lookup[]>()

  function flush(): void {
    const batch = waiting
    waiting = new Map()
    fetch([...batch.keys()]).then((rows) => {
      const found = new Map(rows.map((row) => [keyOf(row), row]))
      for (const [key, lookups] of batch) {
        for (const lookup of lookups) lookup.resolve(found.get(key))
      }
    }, (error: unknown) => {
      for (const lookups of batch.values()) {
        for (const lookup of lookups) lookup.reject(error)
      }
    })
  }

  return async (key) => new Promise<R | undefined>((resolve, reject) => {
    const same = waiting.get(key)
    if (same !== undefined) {
      same.push({ resolve, reject })
      return
    }
    waiting.set(key, [{ resolve, reject }])
    if (waiting.size === 1) setImmediate(flush)
  })
}
