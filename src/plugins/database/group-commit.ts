import type BetterSqlite3 from 'better-sqlite3'

/** The longest a single attempt at the write lock may block the event loop: the connection's busy_timeout. */
export const LOCK_ATTEMPT_MS = 10
/** Pauses between attempts at the write lock, growing to the second figure. */
const RETRY_DELAY_MS: [number, number] = [5, 100]

/** What the write queue has seen: failed writes and statements, and the write lock's waits. */
export interface WriteStats {
  errors: number
  busyWaitSeconds: number
  busyTimeouts: number
}

interface Job {
  work: () => unknown
  resolve: (value: unknown) => void
  reject: (error: unknown) => void
}

/**
 * Group commit for SQLite: the writes that arrive in one turn of the event loop share one `BEGIN IMMEDIATE … COMMIT`,
 * each in a savepoint of its own, so that one write's failure (a unique violation, say) rolls back that write alone.
 * A write's promise settles only after the COMMIT: nothing is acknowledged before it is in the database. A COMMIT
 * costs more than the statements of a typical write; sharing it makes writes several times cheaper under load and
 * adds no more than one turn of the event loop to a lone write.
 *
 * better-sqlite3 is synchronous, and SQLite's busy handler sleeps inside the call: a write lock held elsewhere (another
 * process, a backup) would freeze the whole event loop for the busy timeout, every request and probe with it. So the
 * connection waits at most `LOCK_ATTEMPT_MS` in one go (its busy_timeout, set by openSqlite), and the batch tries again
 * after a timer, the loop free meanwhile, until `busyTimeout` has passed; then its writes fail with SQLITE_BUSY (503).
 */
export function groupCommit(connection: BetterSqlite3.Database, busyTimeout: number,
  stats?: WriteStats): <T>(work: () => T) => Promise<T> {
  const begin = connection.prepare('BEGIN IMMEDIATE')
  const commit = connection.prepare('COMMIT')
  const rollback = connection.prepare('ROLLBACK')
  const savepoint = connection.prepare('SAVEPOINT mrmat_write')
  const release = connection.prepare('RELEASE mrmat_write')
  const rollbackTo = connection.prepare('ROLLBACK TO mrmat_write')
  let queue: Job[] = []
  /**
   * When the first attempt at the lock that found it held began: set while a batch waits for the lock (writes arriving
   * meanwhile join it); the busy timeout runs from there, and metrics count the wait from there.
   */
  let heldSince: number | undefined
  let delay = RETRY_DELAY_MS[0]

  /** The writes queued so far, taken as one batch: the wait for the lock, if any, is over. */
  function takeBatch(): Job[] {
    heldSince = undefined
    delay = RETRY_DELAY_MS[0]
    const batch = queue
    queue = []
    return batch
  }

  function flush(): void {
    const attempt = performance.now()
    try {
      begin.run()
    } catch (error) {
      const now = performance.now()
      heldSince ??= attempt
      const busy = (error as { code?: unknown }).code === 'SQLITE_BUSY'
      if (busy && now - heldSince < busyTimeout) {
        setTimeout(flush, Math.min(delay, busyTimeout - (now - heldSince)))
        delay = Math.min(delay * 2, RETRY_DELAY_MS[1])
        return
      }
      const waited = now - heldSince
      const batch = takeBatch()
      if (stats !== undefined) {
        stats.errors += batch.length
        stats.busyWaitSeconds += waited / 1000
        if (busy) stats.busyTimeouts++
      }
      for (const job of batch) job.reject(error)
      return
    }
    if (stats !== undefined && heldSince !== undefined) stats.busyWaitSeconds += (performance.now() - heldSince) / 1000
    const batch = takeBatch()
    const outcomes: ({ value: unknown } | { error: unknown })[] = []
    for (const job of batch) {
      savepoint.run()
      try {
        outcomes.push({ value: job.work() })
        release.run()
      } catch (error) {
        rollbackTo.run()
        release.run()
        if (stats !== undefined) stats.errors++
        outcomes.push({ error })
      }
    }
    try {
      commit.run()
    } catch (error) {
      if (connection.inTransaction) rollback.run()
      if (stats !== undefined) stats.errors += batch.length
      for (const job of batch) job.reject(error)
      return
    }
    batch.forEach((job, i) => {
      const outcome = outcomes[i]
      if (outcome !== undefined && 'value' in outcome) job.resolve(outcome.value)
      else job.reject(outcome?.error)
    })
  }

  return async <T>(work: () => T): Promise<T> => new Promise<T>((resolve, reject) => {
    queue.push({ work, resolve: resolve as (value: unknown) => void, reject })
    // The first write of a batch schedules it; while a batch waits for the lock, its timer is already set.
    if (queue.length === 1 && heldSince === undefined) setImmediate(flush)
  })
}
