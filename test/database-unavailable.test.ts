import Sqlite from 'better-sqlite3'
import { DrizzleQueryError } from 'drizzle-orm/errors'
import mysql from 'mysql2/promise'
import pg from 'pg'
import t from 'tap'
import { isDatabaseUnavailable } from '#src/plugins/database/index.js'
import { freshMysql, freshSqlite, mysqlConfig } from './fixtures/databases.js'
import { freePorts } from './helpers/process.js'

// Which driver errors mean "the database is unavailable" (a 503 with Retry-After) rather than a fault of the
// statement: real errors of the real drivers. The server answering them is in test/reliability/database-faults.

t.test('SQLite: busy and read-only are unavailable, a constraint is not', async (t) => {
  const db = freshSqlite(t)
  const holder = new Sqlite(db.file)
  holder.exec('PRAGMA journal_mode = WAL; CREATE TABLE x (v INTEGER UNIQUE); INSERT INTO x VALUES (1)')
  const other = new Sqlite(db.file)
  other.pragma('busy_timeout = 0')
  t.teardown(() => { other.close(); holder.close() })
  holder.exec('BEGIN EXCLUSIVE')
  const busy = t.throws(() => other.exec('INSERT INTO x VALUES (2)')) as Error
  holder.exec('ROLLBACK')
  t.match(busy, { code: 'SQLITE_BUSY' })
  t.ok(isDatabaseUnavailable(busy), 'SQLITE_BUSY')
  t.ok(isDatabaseUnavailable(new DrizzleQueryError('insert', [], busy)), 'SQLITE_BUSY wrapped by drizzle')
  const readonly = new Sqlite(db.file, { readonly: true })
  t.teardown(() => { readonly.close() })
  const refused = t.throws(() => readonly.exec('INSERT INTO x VALUES (3)')) as Error
  t.match(refused, { code: 'SQLITE_READONLY' })
  t.ok(isDatabaseUnavailable(refused), 'SQLITE_READONLY')
  const clash = t.throws(() => other.exec('INSERT INTO x VALUES (1)')) as Error
  t.notOk(isDatabaseUnavailable(clash), `${String((clash as { code?: string }).code)} is the statement's fault`)
  t.notOk(isDatabaseUnavailable(new Error('anything else')), 'a plain error')
  t.notOk(isDatabaseUnavailable('not an error'), 'not an error at all')
})

t.test('PostgreSQL: nothing listening is unavailable', async (t) => {
  const [port] = await freePorts(1)
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'nobody', connectionTimeoutMillis: 2000 })
  const error = await client.connect().then(() => undefined, (e: unknown) => e)
  t.match(error, { code: 'ECONNREFUSED' })
  t.ok(isDatabaseUnavailable(error), 'ECONNREFUSED')
  t.ok(isDatabaseUnavailable(Object.assign(new Error('terminating connection due to administrator command'),
    { code: '57P01' })), 'SQLSTATE 57P01, what pg_terminate_backend gives')
  t.notOk(isDatabaseUnavailable(Object.assign(new Error('duplicate key'), { code: '23505' })), 'a unique violation')
})

t.test('MySQL: a killed connection and a lock not got in time are unavailable, a duplicate is not', async (t) => {
  const db = await freshMysql(t)
  if (db === undefined) return
  const name = new URL(db.url).pathname.slice(1)
  const connect = async (): Promise<mysql.Connection> => mysql.createConnection(mysqlConfig(name))
  const [holder, waiter, killer] = await Promise.all([connect(), connect(), connect()])
  t.teardown(async () => {
    await Promise.all([holder, waiter, killer].map(async (c) => c.end().catch(() => undefined)))
  })
  await holder.query('CREATE TABLE x (v INT PRIMARY KEY)')
  await holder.query('INSERT INTO x VALUES (1)')
  const duplicate = await holder.query('INSERT INTO x VALUES (1)').then(() => undefined, (e: unknown) => e)
  t.match(duplicate, { code: 'ER_DUP_ENTRY' })
  t.notOk(isDatabaseUnavailable(duplicate), 'ER_DUP_ENTRY is the statement\'s fault')

  await holder.query('BEGIN')
  await holder.query('UPDATE x SET v = 1 WHERE v = 1')
  await waiter.query('SET SESSION innodb_lock_wait_timeout = 1')
  const timedOut = await waiter.query('UPDATE x SET v = 1 WHERE v = 1').then(() => undefined, (e: unknown) => e)
  await holder.query('ROLLBACK')
  t.match(timedOut, { code: 'ER_LOCK_WAIT_TIMEOUT' })
  t.ok(isDatabaseUnavailable(timedOut), 'ER_LOCK_WAIT_TIMEOUT')

  // Killed mid-statement, then given another statement: what a pooled connection the server dropped meets, whichever
  // way the race between the kill and the next statement goes.
  const inFlight = waiter.query('SELECT SLEEP(10)').then(() => undefined, (e: unknown) => e)
  await killer.query(`KILL CONNECTION ${String(waiter.threadId)}`)
  const killed = await inFlight
  const after = await waiter.query('SELECT 1').then(() => undefined, (e: unknown) => e)
  for (const [what, error] of [['killed mid-statement', killed], ['a statement after the kill', after]] as const) {
    const { code, message } = error as { code?: string, message?: string }
    t.ok(error instanceof Error, `${what}: fails (${String(code)}: ${String(message)})`)
    t.ok(isDatabaseUnavailable(error), `${what}: unavailable`)
  }
})
