import type { BetterSQLite3Database } from 'drizzle-orm/better-sqlite3'
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
}

export type Database = SqliteDatabase

export class DatabaseError extends Error {}
