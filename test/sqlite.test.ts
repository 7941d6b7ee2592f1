import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import BetterSqlite3 from 'better-sqlite3'
import t from 'tap'
import { DatabaseError } from '#src/plugins/database/database.js'
import { LOCK_ATTEMPT_MS } from '#src/plugins/database/group-commit.js'
import { openSqlite } from '#src/plugins/database/sqlite.js'

t.test('SQLite opens in WAL mode with a busy timeout and foreign keys on', async (t) => {
  const file = join(t.testdir(), 'nested', 'dir', 'app.sqlite')
  const database = openSqlite(file)
  t.teardown(() => database.close())
  t.equal(database.description, `sqlite:${file}`, 'creates the missing folders and names the file')
  const { connection } = database
  const pragma = (name: string): unknown => connection.pragma(name, { simple: true })
  t.equal(pragma('journal_mode'), 'wal')
  t.equal(pragma('foreign_keys'), 1)
  t.equal(pragma('busy_timeout'), LOCK_ATTEMPT_MS, 'a statement blocks the event loop briefly at most')
})

t.test('a write waits for another process\'s lock without blocking the event loop', async (t) => {
  const file = join(t.testdir(), 'app.sqlite')
  const database = openSqlite(file, { busyTimeout: 400 })
  t.teardown(() => database.close())
  await database.migrate()
  const { connection } = database
  connection.exec('CREATE TABLE t (v TEXT)')
  const other = new BetterSqlite3(file)
  t.teardown(() => { other.close() })
  const insert = (v: string) => database.write(() => connection.prepare('INSERT INTO t VALUES (?)').run(v))

  // The event loop's longest stall while writes wait: a timer that should fire every 5 ms.
  const stalls = async <T>(work: Promise<T>): Promise<{ outcome: T | Error, longest: number }> => {
    let last = performance.now()
    let longest = 0
    const timer = setInterval(() => {
      const now = performance.now()
      longest = Math.max(longest, now - last)
      last = now
    }, 5)
    try {
      return { outcome: await work.catch((error: unknown) => error as Error), longest }
    } finally {
      clearInterval(timer)
    }
  }

  other.exec('BEGIN EXCLUSIVE')
  const started = performance.now()
  const refused = await stalls(Promise.all([insert('a'), insert('b')]))
  const waited = performance.now() - started
  other.exec('ROLLBACK')
  t.match(refused.outcome, { code: 'SQLITE_BUSY' }, 'the busy timeout ran out: SQLITE_BUSY')
  t.ok(waited >= 390, `after the busy timeout (${waited.toFixed(0)} ms)`)
  t.ok(refused.longest < 100, `the event loop never stalled long (${refused.longest.toFixed(0)} ms at most)`)

  other.exec('BEGIN EXCLUSIVE')
  const later = insert('c')
  setTimeout(() => { other.exec('ROLLBACK') }, 150)
  const joined = insert('d')
  t.same(await Promise.all([later, joined]).then((r) => r.map((x) => x.changes)), [1, 1],
    'the lock released within the timeout: both writes commit')
  t.same(connection.prepare('SELECT v FROM t ORDER BY v').pluck().all(), ['c', 'd'], 'the refused ones wrote nothing')
})

t.test('migrations create the tables once and are idempotent', async (t) => {
  const file = join(t.testdir(), 'app.sqlite')
  const database = openSqlite(file)
  t.teardown(() => database.close())
  await database.migrate()
  await database.migrate()
  const raw = new BetterSqlite3(file, { readonly: true })
  t.teardown(() => raw.close())
  const tables = raw.prepare(
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
  ).pluck().all()
  t.same(tables, ['__drizzle_migrations', 'owners', 'resources'])
  t.equal(raw.prepare('SELECT count(*) FROM __drizzle_migrations').pluck().get(), 1, 'one migration, applied once')
})

t.test('the schema refuses rows that break its constraints', async (t) => {
  const database = openSqlite(':memory:')
  t.teardown(() => database.close())
  await database.migrate()
  const db = database.connection
  const insertResource = db.prepare('INSERT INTO resources (owner_id, name) VALUES (?, ?)')
  const insertOwner = db.prepare('INSERT INTO owners (subject, name) VALUES (?, ?)')
  t.throws(() => insertResource.run(42, 'orphan'), { code: 'SQLITE_CONSTRAINT_FOREIGNKEY' })
  insertOwner.run('alice', 'Alice')
  t.throws(() => insertOwner.run('alice', 'Alice again'), { code: 'SQLITE_CONSTRAINT_UNIQUE' })
  insertResource.run(1, 'one')
  t.throws(() => insertResource.run(1, 'one'), { code: 'SQLITE_CONSTRAINT_UNIQUE' })
  db.prepare('DELETE FROM owners WHERE id = 1').run()
  t.equal(db.prepare('SELECT count(*) FROM resources').pluck().get(), 0, 'resources go with their owner')
})

t.test('a database that cannot be opened is a DatabaseError naming the file', async (t) => {
  const folder = join(t.testdir(), 'a-folder')
  mkdirSync(folder)
  let error: unknown
  try {
    openSqlite(folder)
  } catch (caught) {
    error = caught
  }
  t.ok(error instanceof DatabaseError, 'a folder is not a database file')
  t.match((error as Error).message, `cannot open the SQLite database ${folder}: `)
})
