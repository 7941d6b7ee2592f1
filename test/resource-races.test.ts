import t from 'tap'
import type { Problem as ProblemBody } from '#src/lib/problem.js'
import type { TestDatabase } from './fixtures/databases.js'
import {
  BOB, MAX_ID, PROBLEM_JSON, assertProblem, create, onEachDialect, ownersOf, resourceRow, snapshot,
  type Page, type Resource, type ResourceRow,
} from './helpers/resource.js'

// Resource v1 under concurrent and failing writes (see helpers/resource.ts).

/**
 * Makes the database itself fail some writes, keyed by the name written: `explode-*` with a plain error,
 * `collide-on-insert` with a unique violation (as if the name were taken), so that the statements after
 * the owner upsert fail for a caller who has no owner row yet.
 */
async function injectFaults(db: TestDatabase): Promise<() => Promise<void>> {
  if (db.dialect === 'sqlite') {
    await db.exec(`
      CREATE TABLE test_guard (v INTEGER UNIQUE);
      INSERT INTO test_guard (v) VALUES (1);
      CREATE TRIGGER test_explode_insert BEFORE INSERT ON resources WHEN NEW.name = 'explode-on-insert'
        BEGIN SELECT RAISE(ABORT, 'injected failure'); END;
      CREATE TRIGGER test_collide_insert BEFORE INSERT ON resources WHEN NEW.name = 'collide-on-insert'
        BEGIN INSERT INTO test_guard (v) VALUES (1); END;
      CREATE TRIGGER test_explode_update BEFORE UPDATE ON resources WHEN NEW.name = 'explode-on-update'
        BEGIN SELECT RAISE(ABORT, 'injected failure'); END;
    `)
    return async () => {
      await db.exec(`
        DROP TRIGGER test_explode_insert; DROP TRIGGER test_collide_insert; DROP TRIGGER test_explode_update;
        DROP TABLE test_guard;
      `)
    }
  }
  if (db.dialect === 'mysql') {
    // SIGNAL with MySQL's own duplicate-key number: the driver reports it as ER_DUP_ENTRY, as for a real clash.
    const body = (names: string) => `FOR EACH ROW BEGIN
      IF NEW.name IN (${names}) THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'injected failure'; END IF;
      IF NEW.name = 'collide-on-insert' THEN
        SIGNAL SQLSTATE '23000' SET MYSQL_ERRNO = 1062, MESSAGE_TEXT = 'injected unique violation';
      END IF;
    END`
    await db.exec(`CREATE TRIGGER test_inject_insert BEFORE INSERT ON resources ${body('\'explode-on-insert\'')}`)
    await db.exec(`CREATE TRIGGER test_inject_update BEFORE UPDATE ON resources ${body('\'explode-on-update\'')}`)
    return async () => {
      await db.exec('DROP TRIGGER test_inject_insert')
      await db.exec('DROP TRIGGER test_inject_update')
    }
  }
  await db.exec(`
    CREATE FUNCTION test_inject() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.name IN ('explode-on-insert', 'explode-on-update') THEN RAISE EXCEPTION 'injected failure'; END IF;
      IF NEW.name = 'collide-on-insert' THEN RAISE unique_violation USING MESSAGE = 'injected unique violation'; END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER test_inject BEFORE INSERT OR UPDATE ON resources FOR EACH ROW EXECUTE FUNCTION test_inject();
  `)
  return async () => {
    await db.exec('DROP TRIGGER test_inject ON resources; DROP FUNCTION test_inject();')
  }
}

onEachDialect(t, (t, world) => {
  const { db } = world

  t.test('concurrent writes: the unique constraint lets exactly one win', async (t) => {
    // A caller with no owner row yet: the owner upsert races too.
    const newcomer = world.fresh('racer')
    const token = await world.person(newcomer, 'Racer')
    const replies = await Promise.all(Array.from({ length: 20 }, async () =>
      world.call('POST', `${world.base}/`, { token, json: { name: 'the one' } })))
    const statuses = replies.map((reply) => reply.status).sort()
    t.strictSame(statuses, [201, ...Array<number>(19).fill(409)], 'one 201, nineteen 409')
    for (const reply of replies.filter((r) => r.status === 409)) {
      t.match(reply.headers['content-type'], PROBLEM_JSON)
    }
    const owners = await ownersOf(db, newcomer)
    t.equal(owners.length, 1, 'one owner row')
    const rows = await db.query<ResourceRow>('SELECT id, owner_id, name FROM resources WHERE owner_id = ?',
      [owners[0]?.id ?? 0])
    t.strictSame(rows.map((row) => row.name), ['the one'], 'exactly one row')

    // The same name, spelled with and without padding.
    const padded = await Promise.all(Array.from({ length: 20 }, async (_, i) =>
      world.call('POST', `${world.base}/`, { token, json: { name: i % 2 === 0 ? 'padded race' : '  padded race  ' } })))
    t.strictSame(padded.map((reply) => reply.status).sort(), [201, ...Array<number>(19).fill(409)],
      'trimmed names race as one')

    // Distinct names by another newcomer: every one wins, all under one owner row.
    const many = world.fresh('many')
    const manyToken = await world.person(many, 'Many')
    const distinct = await Promise.all(Array.from({ length: 20 }, async (_, i) =>
      world.call('POST', `${world.base}/`, { token: manyToken, json: { name: `distinct ${String(i)}` } })))
    t.strictSame(distinct.map((reply) => reply.status), Array<number>(20).fill(201), 'twenty distinct names: all 201')
    t.equal((await ownersOf(db, many)).length, 1, 'and one owner row')
    t.equal(new Set(distinct.map((reply) => (reply.body as Resource).owner.id)).size, 1, 'all with the same owner id')

    // Ten resources renamed to the same name at once.
    const ten = (distinct.slice(0, 10).map((reply) => reply.body as Resource))
    const renames = await Promise.all(ten.map(async (resource) =>
      world.call('PUT', world.url(resource.id), { token: manyToken, json: { name: 'converged' } })))
    t.strictSame(renames.map((reply) => reply.status).sort(), [200, ...Array<number>(9).fill(409)],
      'one rename wins, nine 409')
    const converged = await db.query<ResourceRow>('SELECT id, owner_id, name FROM resources WHERE name = ?',
      ['converged'])
    t.equal(converged.length, 1, 'exactly one row has the name')
  })

  t.test('concurrent reads: each is answered for itself, and sees every write acknowledged before it', async (t) => {
    // On SQLite the reads of one moment share one read transaction (plugins/database/read-batch.ts).
    const token = await world.person(world.fresh('reader'), 'Reader')
    const made = await Promise.all(Array.from({ length: 5 }, async (_, i) => create(world, token, `read ${String(i)}`)))
    const gone = await create(world, token, 'read gone')
    t.equal((await world.call('DELETE', world.url(gone.id), { token })).status, 204)
    const ids = [...made.map((resource) => resource.id), gone.id, MAX_ID]
    const first = Math.min(...made.map((resource) => resource.id))
    const replies = await Promise.all([
      ...Array.from({ length: 4 }, () => ids).flat().map(async (id) => world.call('GET', world.url(id), { token })),
      ...Array.from({ length: 4 }, async () =>
        world.call('GET', `${world.base}/?limit=3&after=${String(first - 1)}`, { token })),
    ])
    const gets = replies.slice(0, ids.length * 4)
    gets.forEach((reply, i) => {
      const id = ids[i % ids.length]
      const expected = made.find((resource) => resource.id === id)
      if (expected === undefined) assertProblem(t, reply, 404, `GET ${String(id)}, which does not exist`)
      else t.strictSame([reply.status, reply.body], [200, expected], `GET ${String(id)}`)
    })
    for (const page of replies.slice(ids.length * 4)) {
      t.equal(page.status, 200)
      t.strictSame((page.body as Page).resources.map((resource) => resource.id),
        [...made].sort((a, b) => a.id - b.id).slice(0, 3).map((resource) => resource.id), 'each page the same three')
    }
  })

  t.test('writes are atomic: a failed write leaves no owner row or half-written change behind', async (t) => {
    const removeFaults = await injectFaults(db)
    t.teardown(removeFaults)

    // A new caller whose resource insert fails after the owner upsert.
    for (const [name, status] of [['explode-on-insert', 500], ['collide-on-insert', 409]] as const) {
      const subject = world.fresh('atomic-newcomer')
      const before = await snapshot(db)
      const newcomer = await world.person(subject, 'Atomic')
      const reply = await world.call('POST', `${world.base}/`, { token: newcomer, json: { name } })
      assertProblem(t, reply, status, `a new caller's create failing in the resource insert (${name})`)
      if (status === 500) t.notMatch((reply.body as ProblemBody).detail, /inject|trigger|SQL/i, 'the 500 tells nothing of the database')
      t.strictSame(await ownersOf(db, subject), [], `${name}: no owner row left behind`)
      t.strictSame(await snapshot(db), before, `${name}: nothing written`)
    }

    // An existing owner writing under a new display name: a failed write keeps the old name.
    const subject = world.fresh('atomic-owner')
    const resource = await create(world, await world.person(subject, 'Before'), 'atomic-original')
    const sibling = await create(world, await world.person(subject, 'Before'), 'atomic-sibling')
    const renamedToken = await world.person(subject, 'After')
    const failures: [string, string, string, string, number][] = [
      ['create failing in the insert', 'POST', `${world.base}/`, 'explode-on-insert', 500],
      ['create clashing', 'POST', `${world.base}/`, 'atomic-sibling', 409],
      ['rename failing in the update', 'PUT', world.url(resource.id), 'explode-on-update', 500],
      ['rename clashing', 'PUT', world.url(resource.id), 'atomic-sibling', 409],
    ]
    for (const [what, method, url, name, status] of failures) {
      const before = await snapshot(db)
      const reply = await world.call(method, url, { json: { name }, token: renamedToken })
      assertProblem(t, reply, status, what)
      t.strictSame(await snapshot(db), before, `${what}: resource and owner name unchanged`)
    }
    t.strictSame(await ownersOf(db, subject), [{ id: resource.owner.id, subject, name: 'Before' }],
      'the owner keeps its old name')
    t.equal((await resourceRow(db, sibling.id))?.name, 'atomic-sibling')

    // Refused writes by a caller who has no owner row yet.
    const victim = await create(world, await world.token(BOB), 'atomic-victim')
    const refusals: [string, string, string, number][] = [
      ['PUT on someone else\'s', 'PUT', world.url(victim.id), 403],
      ['PUT on an unknown id', 'PUT', world.url(MAX_ID), 404],
      ['DELETE on someone else\'s', 'DELETE', world.url(victim.id), 403],
      ['DELETE on an unknown id', 'DELETE', world.url(MAX_ID), 404],
    ]
    for (const [what, method, url, status] of refusals) {
      const stranger = world.fresh('atomic-stranger')
      const before = await snapshot(db)
      const body = method === 'PUT' ? { json: { name: 'mine now' } } : {}
      const reply = await world.call(method, url, { token: await world.person(stranger, 'Stranger'), ...body })
      assertProblem(t, reply, status, `a newcomer's ${what}`)
      t.strictSame(await ownersOf(db, stranger), [], `a newcomer's ${what}: no owner row made`)
      t.strictSame(await snapshot(db), before, `a newcomer's ${what}: nothing written`)
    }
    // A refused rename by an existing owner under a new display name.
    const before = await snapshot(db)
    const refused = await world.call('PUT', world.url(victim.id), { token: renamedToken, json: { name: 'mine now' } })
    assertProblem(t, refused, 403, 'an owner\'s refused rename under a new display name')
    t.strictSame(await snapshot(db), before, 'a refused rename leaves the owner\'s name as it was')
  })
})
