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
/** What the write queue has seen: failed writes and statements, and the write lock's waits. */
export interface WriteStats {
  errors: number
  busyWaitSeconds: number
  busyTimeouts: number
}

/** Waits for the lock shorter than this are the statement itself, not a wait: they are not counted. */
const WAIT_THRESHOLD_SECONDS = 0.001

export function groupCommit(connection: BetterSqlite3.Database, stats?: WriteStats): <T>(work: () => T) => Promise<T> {
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
    const started = stats === undefined ? 0 : performance.now()
    try {
      begin.run()
    } catch (error) {
      if (stats !== undefined) {
        stats.errors += batch.length
        stats.busyWaitSeconds += (performance.now() - started) / 1000
        if ((error as { code?: unknown }).code === 'SQLITE_BUSY') stats.busyTimeouts++
      }
      for (const job of batch) job.reject(error)
      return
    }
    if (stats !== undefined) {
      // BEGIN IMMEDIATE returns at once unless another connection holds the lock: its time is the busy wait.
      const waited = (performance.now() - started) / 1000
      if (waited > WAIT_THRESHOLD_SECONDS) stats.busyWaitSeconds += waited
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
    if (queue.length === 1) setImmediate(flush)
  })
}
