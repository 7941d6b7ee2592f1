import t from 'tap'
import {
  ALICE, BOB, MAX_ID, assertProblem, assertResource, create, onEachDialect, ownersOf, resourceRow, snapshot,
  type Page,
} from './helpers/resource.js'

// Resource v1: renaming and deleting, the caller's own resources only (see helpers/resource.ts).

onEachDialect(t, (t, world) => {
  const { db } = world

  t.test('PUT renames the caller\'s resource: 200, 404, 409, and its own name again', async (t) => {
    const token = await world.token(ALICE)
    const resource = await create(world, token, 'to-rename')
    const other = await create(world, token, 'taken')

    const renamed = await world.call('PUT', world.url(resource.id), { token, json: { name: '  renamed  ' } })
    assertResource(t, renamed, 200, { ...resource, name: 'renamed' }, 'rename')
    t.equal((await resourceRow(db, resource.id))?.name, 'renamed', 'the row, trimmed')

    const same = await world.call('PUT', world.url(resource.id), { token, json: { name: 'renamed' } })
    assertResource(t, same, 200, { ...resource, name: 'renamed' }, 'its own current name')
    const samePadded = await world.call('PUT', `${world.url(resource.id)}/`, { token, json: { name: ' renamed ' } })
    assertResource(t, samePadded, 200, { ...resource, name: 'renamed' },
      'its own current name, padded, with a trailing slash')

    let before = await snapshot(db)
    for (const name of ['taken', '  taken ']) {
      const clash = await world.call('PUT', world.url(resource.id), { token, json: { name } })
      assertProblem(t, clash, 409, `a name the caller already uses (${JSON.stringify(name)})`, { title: 'Conflict' })
    }
    t.strictSame(await snapshot(db), before, 'a 409 changes nothing')
    t.equal((await resourceRow(db, other.id))?.name, 'taken')

    const bobsName = (await create(world, await world.token(BOB), 'bob-has-this')).name
    const bobs = await world.call('PUT', world.url(resource.id), { token, json: { name: bobsName } })
    t.equal(bobs.status, 200, 'a name another owner uses is fine')

    before = await snapshot(db)
    const missing = await world.call('PUT', world.url(MAX_ID), { token, json: { name: 'ghost' } })
    assertProblem(t, missing, 404, 'an unknown id', { detail: `There is no resource ${String(MAX_ID)}` })
    t.strictSame(await snapshot(db), before, 'a 404 changes nothing')
  })

  t.test('DELETE: 204 without a body, then 404', async (t) => {
    const token = await world.token(ALICE)
    const resource = await create(world, token, 'to-delete')
    const keep = await create(world, token, 'to-keep')

    const deleted = await world.call('DELETE', world.url(resource.id), { token })
    t.equal(deleted.status, 204)
    t.equal(deleted.text, '', 'no body')
    t.equal(deleted.headers['content-type'], undefined, 'no content type')
    t.equal(await resourceRow(db, resource.id), undefined, 'the row is gone')
    t.ok(await resourceRow(db, keep.id), 'the other resource stays')
    t.equal((await ownersOf(db, 'alice')).length, 1, 'the owner stays')

    assertProblem(t, await world.call('GET', world.url(resource.id), { token }), 404, 'GET after DELETE')
    const before = await snapshot(db)
    assertProblem(t, await world.call('DELETE', world.url(resource.id), { token }), 404, 'DELETE again', {
      detail: `There is no resource ${String(resource.id)}`,
    })
    assertProblem(t, await world.call('DELETE', world.url(MAX_ID), { token }), 404, 'DELETE of an unknown id')
    const back = await world.call('PUT', world.url(resource.id), { token, json: { name: 'back' } })
    assertProblem(t, back, 404, 'PUT after DELETE')
    t.strictSame(await snapshot(db), before, 'the 404s change nothing')

    const again = await create(world, token, 'to-delete')
    t.ok(again.id > resource.id, 'the name is free again, and the id is not reused')
  })

  t.test('two owners can read each other\'s resources but not rename or delete them', async (t) => {
    const alice = await world.token(ALICE)
    const bob = await world.token(BOB)
    const hers = await create(world, alice, 'both-have-this')
    const his = await create(world, bob, 'both-have-this')
    t.not(hers.owner.id, his.owner.id, 'two owner rows')

    const before = await snapshot(db)
    for (const [who, token, victim] of [['bob', bob, hers], ['alice', alice, his]] as const) {
      const put = await world.call('PUT', world.url(victim.id), { token, json: { name: `taken-over-by-${who}` } })
      const theirs = `Resource ${String(victim.id)} belongs to someone else`
      assertProblem(t, put, 403, `${who} renaming the other's`, { title: 'Forbidden', detail: theirs })
      const putSame = await world.call('PUT', world.url(victim.id), { token, json: { name: 'both-have-this' } })
      assertProblem(t, putSame, 403, `${who} renaming the other's to its current name`)
      const del = await world.call('DELETE', world.url(victim.id), { token })
      assertProblem(t, del, 403, `${who} deleting the other's`, { detail: theirs })
    }
    t.strictSame(await snapshot(db), before, 'the rows are unchanged')

    assertResource(t, await world.call('GET', world.url(his.id), { token: alice }), 200, his, 'alice reads bob\'s')
    assertResource(t, await world.call('GET', world.url(hers.id), { token: bob }), 200, hers, 'bob reads alice\'s')
    const listed = await world.call('GET', `${world.base}/?after=${String(hers.id - 1)}&limit=1000`, { token: bob })
    const found = (listed.body as Page).resources.filter((r) => r.id === hers.id || r.id === his.id)
    t.strictSame(found, [hers, his], 'both appear in the list, in id order')

    const stillHers = await world.call('PUT', world.url(hers.id), { token: alice, json: { name: 'still hers' } })
    t.equal(stillHers.status, 200, 'alice still renames her own')
    t.equal((await world.call('DELETE', world.url(his.id), { token: bob })).status, 204, 'bob still deletes his own')
  })
})
