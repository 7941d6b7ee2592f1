import type BetterSqlite3 from 'better-sqlite3'

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
 */
export function groupCommit(connection: BetterSqlite3.Database): <T>(work: () => T) => Promise<T> {
  const begin = connection.prepare('BEGIN IMMEDIATE')
  const commit = connection.prepare('COMMIT')
  const rollback = connection.prepare('ROLLBACK')
  const savepoint = connection.prepare('SAVEPOINT mrmat_write')
  const release = connection.prepare('RELEASE mrmat_write')
  const rollbackTo = connection.prepare('ROLLBACK TO mrmat_write')
  let queue: Job[] = []

  function flush(): void {
    const batch = queue
    queue = []
    try {
      begin.run()
    } catch (error) {
      for (const job of batch) job.reject(error)
      return
    }
    const outcomes: ({ value: unknown } | { error: unknown })[] = []
    for (const job of batch) {
      savepoint.run()
      try {
        outcomes.push({ value: job.work() })
        release.run()
      } catch (error) {
        rollbackTo.run()
        release.run()
        outcomes.push({ error })
      }
    }
    try {
      commit.run()
    } catch (error) {
      if (connection.inTransaction) rollback.run()
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
    if (queue.length === 1) setImmediate(flush)
  })
}
