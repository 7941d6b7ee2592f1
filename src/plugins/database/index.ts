import type { Database } from './database.js'
import type { MysqlOptions } from './mysql.js'
import type { PostgresOptions } from './postgres.js'
import type { DatabaseLocation } from './url.js'

export {
  DatabaseError, isDatabaseUnavailable,
  type Database, type MysqlDatabase, type PostgresDatabase, type SqliteDatabase,
} from './database.js'
export { describeDatabase, parseDatabaseUrl, DatabaseUrlError, type DatabaseLocation } from './url.js'

export interface OpenOptions {
  postgres?: PostgresOptions
  mysql?: MysqlOptions
}

/** Opens the database at `location`; only its dialect's driver is loaded. */
export async function openDatabase(location: DatabaseLocation, options: OpenOptions = {}): Promise<Database> {
  if (location.dialect === 'sqlite') return (await import('./sqlite.js')).openSqlite(location.file)
  if (location.dialect === 'mysql') return (await import('./mysql.js')).openMysql(location.url, options.mysql)
  return (await import('./postgres.js')).openPostgres(location.url, options.postgres)
}
