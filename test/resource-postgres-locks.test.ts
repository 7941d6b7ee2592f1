import pg from 'pg'
import t from 'tap'
import type { PostgresDatabase } from '#src/plugins/database/database.js'
import { postgresResources } from '#plugins/resource/v1/repository-postgres.js'
import { freshPostgres, openTestDatabase, postgresConfig } from './fixtures/databases.js'

// A delete (or rename) and a create by the same owner at the same moment. A create locks the owner row (its upsert)
// and then, on the unique (owner, name) index, waits for a transaction deleting or renaming a resource of that name.
// If the delete held the resource's row while waiting for the owner's, PostgreSQL had to abort one of the two
// (deadlock detected, 40P01): the concurrency suite saw a delete answered 500. Both must lock the owner first.

for (const write of ['remove', 'rename'] as const) {
  t.test(`a ${write} waits for the owner row rather than deadlocking with a create of the same name`, async (t) => {
    const db = await freshPostgres(t)
    if (db === undefined) return
    const database = await openTestDatabase(db, 2) as PostgresDatabase
    const holder = new pg.Client(postgresConfig(new URL(db.url).pathname.slice(1)))
    await holder.connect()
    t.teardown(async () => {
      await holder.end()
      await database.close()
    })
    await database.migrate()
    const resources = postgresResources(database)
    const alice = { subject: 'alice', name: 'Alice' }
    const taken = await resources.create(alice, 'alpha')

    // Another writer, as a create is: the owner row locked first, then a resource of the same name inserted.
    await holder.query('BEGIN')
    await holder.query('SELECT id FROM owners WHERE subject = $1 FOR UPDATE', ['alice'])
    const written = write === 'remove' ? resources.remove(alice, taken.id) : resources.rename(alice, taken.id, 'beta')
    const outcome = written.then((value) => ({ value }), (error: unknown) => ({ error }))
    // The write is under way (waiting, if it waits at all, for the owner row) before the other writer inserts.
    await new Promise((resolve) => setTimeout(resolve, 300))
    const inserted = await holder.query('INSERT INTO resources (owner_id, name) VALUES ($1, $2)', [taken.owner.id,
      'alpha']).then(() => 'inserted', (error: unknown) => (error as { code?: string }).code)
    t.equal(inserted, '23505', 'the other writer finds the name taken (the write has not touched the resource yet)')
    await holder.query('ROLLBACK')

    const result = await outcome
    t.notOk('error' in result && result.error, 'no deadlock: the write is not aborted')
    if (write === 'remove') t.same(result, { value: 'deleted' })
    else t.match(result, { value: { id: taken.id, name: 'beta' } })
  })
}
