import t from 'tap'
import {
  ALICE, assertProblem, create, onEachDialect, ownersOf, resourceRow, type Resource,
} from './helpers/resource.js'

// What "the same name" and "the same owner" mean, the same on every database (see helpers/resource.ts): names are
// full Unicode, compared code point by code point, never case-folded, normalised or padded.

onEachDialect(t, (t, world) => {
  const { db } = world

  t.test('names are full Unicode, kept exactly, and equal only when their code points are', async (t) => {
    const token = await world.person(world.fresh('unicode'), 'Unicode')
    const kept = ['🦊 Fuchs', 'Name', 'name', 'NAME', 'é composed', 'e\u0301 composed', 'straße', 'strasse',
      'ｆｕｌｌ', 'full', '日本語の名前', 'a b', 'a  b', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢']
    const created: Resource[] = []
    for (const name of kept) {
      const reply = await world.call('POST', `${world.base}/`, { token, json: { name } })
      t.equal(reply.status, 201, `${JSON.stringify(name)}: a name of its own (201)`)
      const resource = reply.body as Resource
      created.push(resource)
      t.equal(resource.name, name, `${JSON.stringify(name)}: answered as sent`)
      t.equal((await resourceRow(db, resource.id))?.name, name, `${JSON.stringify(name)}: stored as sent`)
    }
    for (const resource of created) {
      const read = await world.call('GET', world.url(resource.id), { token })
      t.equal((read.body as Resource).name, resource.name, `${JSON.stringify(resource.name)}: read back as sent`)
    }
    for (const name of ['🦊 Fuchs', 'name', 'e\u0301 composed', '  straße ']) {
      const again = await world.call('POST', `${world.base}/`, { token, json: { name } })
      assertProblem(t, again, 409, `${JSON.stringify(name)} again`)
    }

    const longest = '🦊'.repeat(255)
    const fits = await world.call('POST', `${world.base}/`, { token, json: { name: longest } })
    t.equal(fits.status, 201, '255 characters outside the Basic Multilingual Plane (1,020 bytes of UTF-8) fit')
    t.equal((fits.body as Resource).name, longest, 'and come back whole')
    const over = await world.call('POST', `${world.base}/`, { token, json: { name: `${longest}🦊` } })
    t.equal(over.status, 400, 'the 256th character is a 400, not a database error')
  })

  t.test('owners are the same only when their subjects are byte for byte', async (t) => {
    const subject = world.fresh('Carol')
    const carol = await create(world, await world.person(subject, 'Carol'), 'carol-own')
    for (const other of [`${subject} `, subject.toLowerCase(), subject.toUpperCase(), ` ${subject}`]) {
      const token = await world.person(other, 'Impostor')
      const theirs = await create(world, token, 'carol-own')
      t.not(theirs.owner.id, carol.owner.id, `${JSON.stringify(other)} is another owner`)
      t.equal(theirs.owner.subject, other, `${JSON.stringify(other)}: its subject kept exactly`)
      const refused = await world.call('DELETE', world.url(carol.id), { token })
      assertProblem(t, refused, 403, `${JSON.stringify(other)} deleting ${JSON.stringify(subject)}'s resource`)
    }
    t.strictSame(await ownersOf(db, subject), [{ id: carol.owner.id, subject, name: 'Carol' }],
      'the owner row is untouched by the others')
    const reader = await world.token(ALICE)
    const still = await world.call('GET', world.url(carol.id), { token: reader })
    t.equal(still.status, 200, 'the resource is still there')
  })

  t.test('a subject longer than MySQL keeps of an owner is a 403 there, kept whole elsewhere', async (t) => {
    const subject = `long-${'s'.repeat(1100)}`
    const token = await world.person(subject, 'Long')
    const reply = await world.call('POST', `${world.base}/`, { token, json: { name: 'long' } })
    if (db.dialect === 'mysql') {
      assertProblem(t, reply, 403, 'a 1,105-byte subject on MySQL')
      t.match((reply.body as { detail: string }).detail, /subject is longer than the 1024 bytes/, 'says why')
      t.strictSame(await ownersOf(db, subject), [], 'no owner row')
    } else {
      t.equal(reply.status, 201, `a 1,105-byte subject on ${db.dialect}`)
      t.equal((await ownersOf(db, subject))[0]?.subject, subject, 'kept whole')
    }
  })
})
