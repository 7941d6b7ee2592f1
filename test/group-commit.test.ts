import { join } from 'node:path'
import Sqlite from 'better-sqlite3'
import t from 'tap'
import { openSqlite } from '#src/plugins/database/sqlite.js'

// SQLite's group commit: the writes of one turn of the event loop share a transaction, each in a savepoint.

t.test('writes of one moment commit together, and one that fails takes only itself back', async (t) => {
  const file = join(t.testdir(), 'group.sqlite')
  const database = openSqlite(file)
  t.teardown(() => database.close())
  database.connection.exec('CREATE TABLE things (name TEXT PRIMARY KEY)')
  const insert = database.connection.prepare('INSERT INTO things (name) VALUES (?)')
  const write = (name: string) => database.write(() => {
    insert.run(name)
    if (name === 'bad') {
      insert.run('written by the failing write')
      throw new Error('refused')
    }
    return name
  })
  const outcomes = await Promise.allSettled([write('a'), write('bad'), write('b'), write('a'), write('c')])
  t.same(outcomes.map((o) => o.status), ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled'])
  const duplicate: unknown = (outcomes[3] as PromiseRejectedResult).reason
  t.match(duplicate, { code: 'SQLITE_CONSTRAINT_PRIMARYKEY' }, 'a duplicate fails alone')

  // Another connection sees exactly the acknowledged writes: they were committed before they were acknowledged.
  const other = new Sqlite(file, { readonly: true })
  t.teardown(() => other.close())
  const names = (other.prepare('SELECT name FROM things ORDER BY name').all() as { name: string }[]).map((r) => r.name)
  t.same(names, ['a', 'b', 'c'], 'nothing of the failed writes is there')

  t.same(await write('later'), 'later', 'a write after the batch is a batch of its own')
})

t.test('when the database is locked, every write of the moment is refused and nothing is half-written', async (t) => {
  const file = join(t.testdir(), 'locked.sqlite')
  const database = openSqlite(file, { busyTimeout: 50 })
  t.teardown(() => database.close())
  database.connection.exec('CREATE TABLE things (name TEXT PRIMARY KEY)')
  const holder = new Sqlite(file)
  t.teardown(() => holder.close())
  holder.exec('BEGIN IMMEDIATE')
  const insert = database.connection.prepare('INSERT INTO things (name) VALUES (?)')
  const outcomes = await Promise.allSettled(['x', 'y'].map((name) => database.write(() => insert.run(name))))
  t.same(outcomes.map((o) => o.status), ['rejected', 'rejected'])
  t.match((outcomes[0] as PromiseRejectedResult).reason, { code: 'SQLITE_BUSY' })
  holder.exec('ROLLBACK')
  t.same(await database.write(() => insert.run('z').changes), 1, 'writes go on once the lock is gone')
  t.equal(database.connection.inTransaction, false)
})
