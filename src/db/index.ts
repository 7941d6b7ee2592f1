import type { Database } from './database.js'
import { openPostgres, type PostgresOptions } from './postgres.js'
import { openSqlite } from './sqlite.js'
import type { DatabaseLocation } from './url.js'

export { DatabaseError, type Database, type PostgresDatabase, type SqliteDatabase } from './database.js'
export { describeDatabase, parseDatabaseUrl, DatabaseUrlError, type DatabaseLocation } from './url.js'

export interface OpenOptions {
  postgres?: PostgresOptions
}

export async function openDatabase(location: DatabaseLocation, options: OpenOptions = {}): Promise<Database> {
  if (location.dialect === 'sqlite') return openSqlite(location.file)
  return openPostgres(location.url, options.postgres)
}
