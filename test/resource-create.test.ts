import t from 'tap'
import {
  ALICE, BOB, MAX_ID, NAMELESS, ORIGIN, PREFIX,
  assertInvalid, assertProblem, assertResource, create, onEachDialect, ownersOf, resourceRow, snapshot,
  type Resource,
} from './helpers/resource.js'

// Resource v1: creating and reading, and the owner row a write makes (see helpers/resource.ts).

onEachDialect(t, (t, world) => {
  const { db } = world

  t.test('POST creates a resource owned by the caller, with an absolute Location that serves it', async (t) => {
    const token = await world.token(ALICE)
    const reply = await world.call('POST', `${world.base}/`, { token, json: { name: '  first resource  ' } })
    const created = reply.body as Resource
    const [owner] = await ownersOf(db, 'alice')
    t.ok(owner, 'the owner row was made from the token')
    t.strictSame(owner, { id: owner?.id, subject: 'alice', name: 'Alice' }, 'owner row: sub and preferred_username')
    const ownerShown = { id: owner?.id ?? 0, subject: 'alice', name: 'Alice' }
    const expected = { id: created.id, name: 'first resource', owner: ownerShown }
    assertResource(t, reply, 201, expected, 'POST')
    t.type(created.id, 'number')
    t.ok(Number.isInteger(created.id) && created.id > 0, 'the id is a positive integer')
    t.strictSame(await resourceRow(db, created.id), { id: created.id, owner_id: owner?.id, name: 'first resource' },
      'the row, trimmed')

    const location = reply.headers.location ?? ''
    t.equal(location, world.url(created.id), 'Location is the absolute URL of the resource')
    t.equal(new URL(location).origin, ORIGIN, 'Location is absolute, on this server')
    assertResource(t, await world.call('GET', location, { token }), 200, expected, 'GET Location with the same token')
    const slashed = await world.call('GET', `${world.url(created.id)}/`, { token })
    assertResource(t, slashed, 200, expected, 'GET with a trailing slash')

    const second = await world.call('POST', world.base, { token, json: { name: 'second resource' } })
    t.equal(second.status, 201, 'POST without the trailing slash')
    t.ok((second.body as Resource).id > created.id, 'ids increase')
    t.equal((second.body as Resource).owner.id, owner?.id, 'the same owner row')
    t.equal((await ownersOf(db, 'alice')).length, 1, 'one owner row per subject')
  })

  t.test('names: trimmed, 1-255 characters counted as characters, unique per owner', async (t) => {
    const token = await world.token(ALICE)
    const cases: [string, string, string][] = [
      ['surrounding spaces are trimmed', '   padded name \u00a0 ', 'padded name'],
      ['inner spaces are kept', 'a  b', 'a  b'],
      ['one character', 'x', 'x'],
      ['255 characters', 'n'.repeat(255), 'n'.repeat(255)],
      ['255 characters outside the BMP', '\u{1F600}'.repeat(255), '\u{1F600}'.repeat(255)],
      ['accented letters', 'Jürgen Müller', 'Jürgen Müller'],
    ]
    for (const [what, sent, stored] of cases) {
      const reply = await world.call('POST', `${world.base}/`, { token, json: { name: sent } })
      t.equal(reply.status, 201, `${what}: 201`)
      const id = (reply.body as Resource | undefined)?.id ?? 0
      t.equal((reply.body as Resource | undefined)?.name, stored, `${what}: answered`)
      t.equal((await resourceRow(db, id))?.name, stored, `${what}: stored`)
    }

    const before = await snapshot(db)
    for (const name of ['x', '  x  ', 'padded name']) {
      const reply = await world.call('POST', `${world.base}/`, { token, json: { name } })
      assertProblem(t, reply, 409, `the caller's own name again (${JSON.stringify(name)})`, { title: 'Conflict', detail: /already own/ })
    }
    t.strictSame(await snapshot(db), before, 'a 409 writes nothing')

    const bob = await world.call('POST', `${world.base}/`, { token: await world.token(BOB), json: { name: 'x' } })
    t.equal(bob.status, 201, 'another owner may use the same name')
    t.equal((bob.body as Resource).owner.subject, 'bob')
  })

  t.test('GET /:id answers the resource, 404 for none and 400 for an id that is not a positive integer', async (t) => {
    const token = await world.token(BOB, 'read')
    const mine = await create(world, await world.token(BOB), 'bob-get')
    assertResource(t, await world.call('GET', world.url(mine.id), { token }), 200, mine, 'GET with a read-only token')

    const missing = await world.call('GET', world.url(MAX_ID), { token })
    assertProblem(t, missing, 404, 'an unknown id', {
      type: 'about:blank',
      title: 'Not Found',
      detail: `There is no resource ${String(MAX_ID)}`,
      instance: `${PREFIX}/${String(MAX_ID)}`,
    })

    for (const id of ['abc', '0', '-1', '1.5', '99999999999', String(MAX_ID + 1), '%20']) {
      assertInvalid(t, await world.call('GET', world.url(id), { token }), 'path', '/id', `GET /${id}`)
    }
    const write = await world.token(BOB)
    for (const id of ['abc', '0', '-1', '1.5', '99999999999']) {
      const put = await world.call('PUT', world.url(id), { token: write, json: { name: 'whatever' } })
      assertInvalid(t, put, 'path', '/id', `PUT /${id}`)
      assertInvalid(t, await world.call('DELETE', world.url(id), { token: write }), 'path', '/id', `DELETE /${id}`)
    }
  })

  t.test('the owner row is made on the first write and its name kept current', async (t) => {
    const subject = world.fresh('person')
    await world.call('GET', `${world.base}/`, { token: await world.person(subject, 'Reader', 'read') })
    t.strictSame(await ownersOf(db, subject), [], 'reading makes no owner row')

    const first = await create(world, await world.person(subject, 'First Name'), 'owned-1')
    t.equal(first.owner.name, 'First Name')
    const [row] = await ownersOf(db, subject)
    t.strictSame(row, { id: first.owner.id, subject, name: 'First Name' }, 'made from sub and preferred_username')

    const second = await create(world, await world.person(subject, 'Second Name'), 'owned-2')
    t.strictSame(second.owner, { id: first.owner.id, subject, name: 'Second Name' }, 'POST: same owner, new name')
    const asSecond = await world.person(subject, 'Second Name')
    const readFirst = await world.call('GET', world.url(first.id), { token: asSecond })
    t.equal((readFirst.body as Resource).owner.name, 'Second Name', 'older resources show the current name')

    const asThird = await world.person(subject, 'Third Name')
    const renamed = await world.call('PUT', world.url(first.id), { token: asThird, json: { name: 'owned-1b' } })
    const third = { id: first.owner.id, subject, name: 'Third Name' }
    assertResource(t, renamed, 200, { id: first.id, name: 'owned-1b', owner: third }, 'PUT: new name')
    t.strictSame(await ownersOf(db, subject), [third], 'PUT updated the owner row')

    const asFourth = await world.person(subject, 'Fourth Name')
    const deleted = await world.call('DELETE', world.url(first.id), { token: asFourth })
    t.equal(deleted.status, 204, 'DELETE with yet another name')
    const left = await world.call('GET', world.url(second.id), { token: await world.person(subject, 'Fourth Name') })
    t.equal((left.body as Resource).owner.name, 'Fourth Name', 'DELETE, a write, keeps the name current too')
    t.strictSame(await ownersOf(db, subject), [{ id: first.owner.id, subject, name: 'Fourth Name' }],
      'DELETE updated the owner row')

    const nameless = await create(world, await world.token(NAMELESS), 'nameless-1')
    t.strictSame(nameless.owner, { id: nameless.owner.id, subject: 'nameless', name: 'nameless' },
      'no preferred_username: the client id names the owner')
  })
})
