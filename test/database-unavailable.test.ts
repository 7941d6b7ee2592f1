import Sqlite from 'better-sqlite3'
import { DrizzleQueryError } from 'drizzle-orm/errors'
import pg from 'pg'
import t from 'tap'
import { isDatabaseUnavailable } from '#src/plugins/database/index.js'
import { freshSqlite } from './fixtures/databases.js'
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
