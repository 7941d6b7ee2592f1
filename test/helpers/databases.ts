import { randomBytes } from 'node:crypto'
import { userInfo } from 'node:os'
import { join } from 'node:path'
import Sqlite from 'better-sqlite3'
import pg from 'pg'
import type { Test } from 'tap'
import { openDatabase, parseDatabaseUrl, type Database } from '#src/plugins/database/index.js'
import { requirePart } from './require.js'

export type Dialect = 'sqlite' | 'postgres'

/** Where the test PostgreSQL runs: trust auth, the operating system's user. */
export const POSTGRES_HOST = '127.0.0.1'
export const POSTGRES_PORT = 5432
/** The database the fixtures connect to in order to create and drop the fresh ones. */
const POSTGRES_ADMIN_DATABASE = 'postgres'
const CONNECT_TIMEOUT_MS = 3_000

/** The user the server picks for a URI without one, as libpq does: PGUSER, else USER, else the OS account. */
function osUser(): string {
  return [process.env.PGUSER, process.env.USER].find((name) => name !== undefined && name !== '') ?? userInfo().username
}

/** A database the test owns, and a side door into it to read and write rows directly. */
export interface TestDatabase {
  readonly dialect: Dialect
  /** What --db and parseDatabaseUrl take: `sqlite:<file>` or `postgres://127.0.0.1:5432/<name>`. */
  readonly url: string
  /** The rows of one statement run directly on the database; `?` placeholders, whatever the dialect. */
  query<T extends object = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>
  /** Statements without parameters (DDL, say), run directly on the database. */
  exec(sql: string): Promise<void>
}

/** `?` placeholders as PostgreSQL's `$1, $2, ...` (no statement here has a `?` inside a literal). */
function numbered(sql: string): string {
  let n = 0
  return sql.replace(/\?/g, () => `$${String(++n)}`)
}

/** A fresh SQLite file in the test's folder (not created yet: the server creates and migrates it). */
export function freshSqlite(t: Test): TestDatabase {
  const file = join(t.testdir(), `mrmat-test-${randomBytes(4).toString('hex')}.sqlite`)
  let connection: Sqlite.Database | undefined
  const open = (): Sqlite.Database => {
    if (connection === undefined) {
      connection = new Sqlite(file)
      connection.pragma('busy_timeout = 5000')
      connection.pragma('foreign_keys = ON')
    }
    return connection
  }
  // Teardowns run last-registered first: this one after the server's, so the server closes first.
  t.teardown(() => { connection?.close() })
  return {
    dialect: 'sqlite',
    url: `sqlite:${file}`,
    async query<T extends object>(sql: string, params: unknown[] = []) {
      const statement = open().prepare(sql)
      if (statement.reader) return statement.all(...params) as T[]
      statement.run(...params)
      return []
    },
    async exec(sql: string) {
      open().exec(sql)
    },
  }
}

function adminPool(): pg.Pool {
  const pool = new pg.Pool({ ...postgresConfig(POSTGRES_ADMIN_DATABASE), max: 1 })
  pool.on('error', () => undefined)
  return pool
}

let reachable: Promise<boolean> | undefined

/** Whether the test PostgreSQL answers (asked once per process). */
export async function postgresAvailable(): Promise<boolean> {
  reachable ??= (async () => {
    const pool = adminPool()
    try {
      await pool.query('SELECT 1')
      return true
    } catch {
      return false
    } finally {
      await pool.end()
    }
  })()
  return reachable
}

/** A database name no other test file or run will pick: mrmat_test_<pid>_<random>. */
export function uniqueDatabaseName(): string {
  return `mrmat_test_${String(process.pid)}_${randomBytes(6).toString('hex')}`
}

export function postgresUrl(name: string): string {
  return `postgres://${POSTGRES_HOST}:${String(POSTGRES_PORT)}/${name}`
}

/** How to connect to a database of the test PostgreSQL with a pg.Client of one's own. */
export function postgresConfig(name: string): pg.ClientConfig {
  return { host: POSTGRES_HOST, port: POSTGRES_PORT, user: osUser(), database: name, connectionTimeoutMillis: CONNECT_TIMEOUT_MS }
}

/**
 * Drops a database: plainly when nobody is connected, else after ending the backends still in it (a
 * server pool that was not closed, say).
 */
async function dropDatabase(name: string): Promise<void> {
  const pool = adminPool()
  try {
    try {
      await pool.query(`DROP DATABASE IF EXISTS "${name}"`)
    } catch (error) {
      if ((error as { code?: unknown }).code !== '55006') throw error
      await pool.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name])
      await pool.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
    }
  } finally {
    await pool.end()
  }
}

/**
 * A fresh, empty PostgreSQL database for this test, dropped in its teardown (after the server's pool,
 * registered later, is closed). Undefined when PostgreSQL is not reachable: requirePart has then
 * said so, and skipped or failed.
 */
export async function freshPostgres(t: Test): Promise<TestDatabase | undefined> {
  if (!requirePart(t, await postgresAvailable(), `PostgreSQL on ${POSTGRES_HOST}:${String(POSTGRES_PORT)}`)) return undefined
  const name = uniqueDatabaseName()
  const admin = adminPool()
  try {
    await admin.query(`CREATE DATABASE "${name}"`)
  } finally {
    await admin.end()
  }
  const pool = new pg.Pool({ ...postgresConfig(name), max: 2 })
  pool.on('error', () => undefined)
  t.teardown(async () => {
    if (!pool.ended) await pool.end()
    await dropDatabase(name)
  })
  return {
    dialect: 'postgres',
    url: postgresUrl(name),
    async query<T extends object>(sql: string, params: unknown[] = []) {
      return (await pool.query<T>(numbered(sql), params)).rows
    },
    async exec(sql: string) {
      await pool.query(sql)
    },
  }
}

/** A fresh database of the dialect, or undefined when its part of the machine is missing. */
export async function freshDatabase(t: Test, dialect: Dialect): Promise<TestDatabase | undefined> {
  return dialect === 'sqlite' ? freshSqlite(t) : freshPostgres(t)
}

/** Opens the database the way the CLI does: `openDatabase(parseDatabaseUrl(url), { postgres: { poolSize } })`. */
export async function openTestDatabase(database: TestDatabase, poolSize = 10): Promise<Database> {
  return openDatabase(parseDatabaseUrl(database.url), { postgres: { poolSize } })
}
