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

/** An open database, whichever the dialect. */
interface DatabaseBase {
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

/** The database cannot be opened or migrated: the CLI exits 1 with the message. */
export const DatabaseError = codedError('MRMAT_DATABASE_UNAVAILABLE', { exitCode: EXIT_RUNTIME })
