import { codedError, EXIT_RUNTIME } from '../../lib/errors.js'
import type BetterSqlite3 from 'better-sqlite3'
import type { BetterSQLite3Database } from 'drizzle-orm/better-sqlite3'
import type { MySql2Database } from 'drizzle-orm/mysql2'
import type { Pool as MysqlPool } from 'mysql2/promise'
import type { NodePgDatabase } from 'drizzle-orm/node-postgres'
import type pg from 'pg'
import type * as mysqlSchema from './schema/mysql.js'
import type * as postgresSchema from './schema/postgres.js'
import type * as sqliteSchema from './schema/sqlite.js'

/** What metrics read of a database (see plugins/metrics.ts): counters since it was opened, the pool as it is now. */
export interface DatabaseStats {
  /** Statements that failed (a unique violation too), as far as the pool or the write queue sees them. */
  queryErrors: number
  /** PostgreSQL, MySQL: connections open, idle, and clients waiting for one. */
  pool?: { size: number, idle: number, waiting: number }
  /** SQLite: seconds writes spent waiting for the write lock, and how often the busy timeout ran out (SQLITE_BUSY). */
  busy?: { waitSeconds: number, timeouts: number }
}

/** An open database, whichever the dialect. */
interface DatabaseBase {
  /** Counters and the pool's state, for metrics; free to call. */
  stats?(): DatabaseStats
  /** Where it is, safe to log (no password). */
  readonly description: string
  /** Applies the pending migrations; safe to call on an up-to-date database. */
  migrate(): Promise<void>
  /** Rejects with a client-safe message when the database cannot serve queries. */
  ping(): Promise<void>
  close(): Promise<void>
}

export interface SqliteDatabase extends DatabaseBase {
  readonly dialect: 'sqlite'
  readonly orm: BetterSQLite3Database<typeof sqliteSchema>
  /** The better-sqlite3 connection beneath, for pragmas and statements drizzle does not build. */
  readonly connection: BetterSqlite3.Database
  /**
   * Runs `work` (synchronous statements) as one atomic write, committed together with the other writes of the same
   * turn of the event loop; resolves once committed.
   */
  write<T>(work: () => T): Promise<T>
  /**
   * Runs `work` (synchronous reads) with the other reads of the same turn of the event loop, in one read transaction
   * taken after them all; resolves with what it returned.
   */
  read<T>(work: () => T): Promise<T>
}

export interface PostgresDatabase extends DatabaseBase {
  readonly dialect: 'postgres'
  readonly orm: NodePgDatabase<typeof postgresSchema>
  /** For statements drizzle cannot build, such as a data-modifying CTE. */
  readonly pool: pg.Pool
}

export interface MysqlDatabase extends DatabaseBase {
  readonly dialect: 'mysql'
  readonly orm: MySql2Database<typeof mysqlSchema>
  /** mysql2's promise pool, for transactions of several statements (MySQL has no data-modifying CTE). */
  readonly pool: MysqlPool
}

export type Database = SqliteDatabase | PostgresDatabase | MysqlDatabase

/** Runs a trivial statement for ping(): rejects, saying that the database does not answer and why, when it fails. */
export async function answers(statement: () => unknown): Promise<void> {
  try {
    await statement()
  } catch (error) {
    throw new Error(`the database does not answer: ${(error as Error).message}`, { cause: error })
  }
}

/** The database cannot be opened or migrated: the CLI exits 1 with the message. */
export const DatabaseError = codedError('MRMAT_DATABASE_UNAVAILABLE', { exitCode: EXIT_RUNTIME })

/** PostgreSQL SQLSTATEs of a server that is gone, going or full: connection exceptions, shut down, too many clients. */
const POSTGRES_UNAVAILABLE = /^(08...|57P0[1-3]|53300)$/
/** SQLite result codes of a database that cannot take the statement now: locked, read-only, I/O, full, unopenable. */
const SQLITE_UNAVAILABLE = /^SQLITE_(BUSY|LOCKED|READONLY|IOERR|FULL|CANTOPEN)/
/**
 * mysql2's codes of a server that is gone, full or not taking the statement now: the connection lost, too many
 * connections, shutting down, a lock not got in time (or a deadlock still there after the repository's retries),
 * read-only, an account locked.
 */
const MYSQL_UNAVAILABLE = new RegExp('^(PROTOCOL_CONNECTION_LOST|PROTOCOL_SEQUENCE_TIMEOUT|ER_CON_COUNT_ERROR'
  + '|ER_SERVER_SHUTDOWN|ER_LOCK_WAIT_TIMEOUT|ER_LOCK_DEADLOCK|ER_OPTION_PREVENTS_STATEMENT|ER_READ_ONLY_MODE'
  + '|ER_ACCOUNT_HAS_BEEN_LOCKED|ER_CONNECTION_KILLED|ER_CLIENT_INTERACTION_TIMEOUT)$')
/** Socket errors on the way to PostgreSQL or MySQL. */
const NETWORK_UNAVAILABLE = /^(ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN)$/
/**
 * The drivers' own errors for a connection lost or not got, which carry no code: pg's, and mysql2's for a statement
 * given to a connection the server has already closed (killed, say) before the pool noticed.
 */
const CONNECTION_MESSAGES = new RegExp('^(Connection terminated|timeout exceeded when trying to connect'
  + '|Client has encountered a connection error|Can\'t add new command when connection is in closed state'
  + '|Can\'t write in closed state)')

/**
 * Whether a statement failed because the database is unavailable (down, restarting, locked, read-only) rather than
 * because of the statement: the request gets a 503 with Retry-After, not a 500. drizzle wraps the driver's error as
 * the cause of its own; the chain is followed.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let cause = error, depth = 0; cause instanceof Error && depth < 5; cause = cause.cause, depth++) {
    const code = (cause as { code?: unknown }).code
    if (typeof code === 'string') {
      if (POSTGRES_UNAVAILABLE.test(code) || SQLITE_UNAVAILABLE.test(code) || MYSQL_UNAVAILABLE.test(code)
        || NETWORK_UNAVAILABLE.test(code)) {
        return true
      }
    }
    if (CONNECTION_MESSAGES.test(cause.message)) return true
  }
  return false
}
