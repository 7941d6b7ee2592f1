import type { Database } from './database.js'
import { openSqlite } from './sqlite.js'
import { DatabaseError } from './database.js'
import type { DatabaseLocation } from './url.js'

export { DatabaseError, type Database, type SqliteDatabase } from './database.js'
export { describeDatabase, parseDatabaseUrl, DatabaseUrlError, type DatabaseLocation } from './url.js'

export async function openDatabase(location: DatabaseLocation): Promise<Database> {
  if (location.dialect === 'sqlite') return openSqlite(location.file)
  throw new DatabaseError('PostgreSQL is not supported yet')
}
