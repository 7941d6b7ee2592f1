import { userInfo } from 'node:os'
import pg from 'pg'
import { parseIntoClientConfig } from 'pg-connection-string'
import { drizzle } from 'drizzle-orm/node-postgres'
import { migrate } from 'drizzle-orm/node-postgres/migrator'
import { migrationsFolder } from '../../lib/package-info.js'
import { answers, DatabaseError, type PostgresDatabase } from './database.js'
import * as schema from './schema/postgres.js'
import { describeDatabase } from './url.js'

export interface PostgresOptions {
  /** Connections in the pool. */
  poolSize?: number
  /** Milliseconds to wait for a connection before failing. */
  connectTimeout?: number
}

// pg_advisory_lock key that serialises migrations across processes: 'mrmat-ts' as a number.
const MIGRATION_LOCK = 0x6d726d61745f7473n

export async function openPostgres(url: string, options: PostgresOptions = {}): Promise<PostgresDatabase> {
  const description = describeDatabase({ dialect: 'postgres', url })
  const connection = parseIntoClientConfig(url)
  const pool = new pg.Pool({
    ...connection,
    // As libpq does: without a user in the URI or PGUSER, the operating system's (pg reads only $USER).
    user: [connection.user, process.env.PGUSER, process.env.USER].find((name) => name !== undefined && name !== '')
      ?? userInfo().username,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: options.connectTimeout ?? 5_000,
    // Let idle connections go, so a quiet replica does not hold the server's slots.
    idleTimeoutMillis: 30_000,
  })
  // An idle connection that breaks (server restart) errors on the pool: log-worthy, not fatal.
  pool.on('error', () => undefined)
  try {
    await pool.query('SELECT 1')
  } catch (error) {
    await pool.end()
    throw new DatabaseError(`cannot connect to PostgreSQL at ${description}: ${(error as Error).message}`)
  }
  const counted = countErrors(pool)
  const orm = drizzle(pool, { schema })
  return {
    dialect: 'postgres',
    description,
    orm,
    pool,
    stats: () => ({
      queryErrors: counted.errors,
      pool: { size: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount },
    }),
    async migrate() {
      // Replicas starting together must not race: the first to take the lock migrates, the others
      // wait for it and then find nothing left to do.
      const client = await pool.connect()
      try {
        await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK.toString()])
        try {
          await migrate(drizzle(client), { migrationsFolder: migrationsFolder('postgres') })
        } finally {
          await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK.toString()])
        }
      } catch (error) {
        throw new DatabaseError(`cannot migrate the PostgreSQL database ${description}: ${(error as Error).message}`)
      } finally {
        client.release()
      }
    },
    async ping() {
      await answers(async () => pool.query('SELECT 1'))
    },
    async close() {
      if (!pool.ended) await pool.end()
    },
  }
}

/** Counts the statements run through the pool (drizzle's and the repository's) that fail. */
function countErrors(pool: pg.Pool): { errors: number } {
  const counted = { errors: 0 }
  const query = pool.query.bind(pool) as (...args: unknown[]) => unknown
  const count = (): void => { counted.errors++ }
  ;(pool as { query: unknown }).query = (...args: unknown[]): unknown => {
    const last = args.at(-1)
    if (typeof last === 'function') {
      args[args.length - 1] = (error: unknown, ...rest: unknown[]) => {
        if (error !== null && error !== undefined) count()
        ;(last as (...given: unknown[]) => void)(error, ...rest)
      }
      return query(...args)
    }
    const result = query(...args) as Promise<unknown>
    result.catch(count)
    return result
  }
  return counted
}
