import { join } from 'node:path'
import Sqlite from 'better-sqlite3'
import t, { type Test } from 'tap'
import { openSqlite } from '#src/plugins/database/sqlite.js'

// SQLite's shared reads: the reads of one turn of the event loop run together, in one read transaction taken after
// they were all asked for. Another connection stands for another process (a second worker, the sqlite3 shell).

function opened(t: Test) {
  const file = join(t.testdir(), 'reads.sqlite')
  const database = openSqlite(file)
  t.teardown(() => database.close())
  database.connection.exec('CREATE TABLE things (name TEXT PRIMARY KEY)')
  const other = new Sqlite(file)
  t.teardown(() => other.close())
  const names = database.connection.prepare('SELECT name FROM things ORDER BY name').pluck()
  const insertElsewhere = other.prepare('INSERT INTO things (name) VALUES (?)')
  return { database, other, names: () => names.all() as string[], insertElsewhere }
}

t.test('the reads of one moment see what was committed before they ran, and one snapshot', async (t) => {
  const { database, names, insertElsewhere } = opened(t)
  insertElsewhere.run('a')
  const first = database.read(() => ({ names: names(), inTransaction: database.connection.inTransaction }))
  const second = database.read(() => {
    // Committed by another process while the batch runs: not in this batch's snapshot.
    insertElsewhere.run('during')
    return names()
  })
  const third = database.read(() => names())
  // Acknowledged elsewhere after the reads were asked for, before they ran: they see it.
  insertElsewhere.run('b')
  const [a, b, c] = await Promise.all([first, second, third])
  t.strictSame(a, { names: ['a', 'b'], inTransaction: true }, 'the first read, in the shared transaction')
  t.strictSame(b, ['a', 'b'], 'the second read, in the same snapshot')
  t.strictSame(c, ['a', 'b'], 'and the third: a write committed meanwhile is not half seen')
  t.equal(database.connection.inTransaction, false, 'the transaction ends with the batch')
  t.strictSame(await database.read(() => names()), ['a', 'b', 'during'], 'the next moment sees the later write')
})

t.test('a lone read runs outside a transaction, and the batch holds back no checkpoint', async (t) => {
  const { database, other, names, insertElsewhere } = opened(t)
  insertElsewhere.run('a')
  t.equal(await database.read(() => database.connection.inTransaction), false, 'a lone read')
  t.strictSame(await Promise.all([database.read(() => names()), database.read(() => names())]), [['a'], ['a']])
  const [checkpoint] = other.pragma('wal_checkpoint(TRUNCATE)') as { busy: number, log: number }[]
  t.match(checkpoint, { busy: 0, log: 0 }, 'the WAL is checkpointed whole and emptied after the reads')
})

t.test('a read that fails fails alone, and the reads with it are answered', async (t) => {
  const { database, names, insertElsewhere } = opened(t)
  insertElsewhere.run('a')
  const missing = database.connection.prepare('SELECT name FROM things WHERE name = ?').pluck()
  const outcomes = await Promise.allSettled([
    database.read(() => names()),
    database.read(() => database.connection.prepare('SELECT name FROM nowhere').all()),
    database.read(() => { throw new Error('refused by the reader') }),
    database.read(() => missing.get('zzz') ?? null),
  ])
  t.strictSame(outcomes.map((o) => o.status), ['fulfilled', 'rejected', 'rejected', 'fulfilled'])
  t.match((outcomes[1] as PromiseRejectedResult).reason, { code: 'SQLITE_ERROR', message: /no such table/ })
  t.match((outcomes[2] as PromiseRejectedResult).reason, { message: 'refused by the reader' })
  t.strictSame((outcomes[0] as PromiseFulfilledResult<string[]>).value, ['a'])
  t.equal((outcomes[3] as PromiseFulfilledResult<unknown>).value, null)
  t.equal(database.connection.inTransaction, false)
})

t.test('reads beside writes of the same moment: each write is whole or absent in every read', async (t) => {
  const { database, names } = opened(t)
  const insert = database.connection.prepare('INSERT INTO things (name) VALUES (?)')
  const results: Promise<unknown>[] = []
  for (let i = 0; i < 10; i++) {
    results.push(database.write(() => { insert.run(`w${String(i)}-1`); insert.run(`w${String(i)}-2`) }))
    results.push(database.read(() => names()))
  }
  const settled = await Promise.all(results)
  for (const seen of settled.filter((value): value is string[] => Array.isArray(value))) {
    const halves = new Set(seen.map((name) => name.slice(0, name.indexOf('-'))))
    t.equal(seen.length, halves.size * 2, 'no write is seen half done')
  }
  t.equal((await database.read(() => names())).length, 20, 'and every acknowledged write is read after')
})
