import { randomInt } from 'node:crypto'
import t from 'tap'
import { onEachDialect, PREFIX, type Resource } from '../helpers/resource.js'
import { sized } from '../helpers/reliability.js'

// 50 concurrent clients of 5 owners creating, renaming and deleting an overlapping set of resources (a few names,
// everyone's ids). The outcome must be one some serial order of the successful writes gives, consistent with real
// time: a resource's final name is that of a successful write no other successful write on it began after; a 204
// removes it for good; a name is never held twice by one owner; no write on another owner's resource succeeds;
// never a 500.

const CLIENTS = 50
const OWNERS = 5
const OPERATIONS = sized(12, 40)
const NAMES = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta']

interface Write {
  kind: 'create' | 'rename' | 'delete'
  owner: number
  id: number | undefined
  name: string | undefined
  status: number
  sentAt: number
  answeredAt: number
}

onEachDialect(t, (t, world) => {
  t.test(`${String(CLIENTS)} clients, ${String(OPERATIONS)} writes each`, async (t) => {
    const tokens = await Promise.all(Array.from({ length: OWNERS }, async (_, o) =>
      world.person(`owner-${String(o)}`, `Owner ${String(o)}`)))
    const ownerOf = new Map<number, number>()
    const ids: number[] = []
    const writes: Write[] = []
    let clock = 0
    const started = Date.now()
    await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
      const owner = c % OWNERS
      const token = tokens[owner] ?? ''
      for (let n = 0; n < OPERATIONS; n++) {
        const pick = randomInt(3)
        const id = ids.length === 0 || pick === 0 ? undefined : ids[randomInt(ids.length)]
        const kind = id === undefined ? 'create' : pick === 1 ? 'rename' : 'delete'
        const name = kind === 'delete' ? undefined : NAMES[randomInt(NAMES.length)]
        const sentAt = ++clock
        const reply = kind === 'create'
          ? await world.call('POST', `${PREFIX}/`, { token, json: { name } })
          : kind === 'rename'
            ? await world.call('PUT', `${PREFIX}/${String(id)}`, { token, json: { name } })
            : await world.call('DELETE', `${PREFIX}/${String(id)}`, { token })
        const created = kind === 'create' && reply.status === 201 ? (reply.body as Resource).id : undefined
        if (created !== undefined) {
          ids.push(created)
          ownerOf.set(created, owner)
        }
        writes.push({ kind, owner, id: created ?? id, name, status: reply.status, sentAt, answeredAt: ++clock })
      }
    }))

    const statuses = new Map<string, number>()
    for (const w of writes) {
      const key = `${w.kind} ${String(w.status)}`
      statuses.set(key, (statuses.get(key) ?? 0) + 1)
    }
    const rows = await world.db.query<{ id: number, name: string, subject: string }>(
      'SELECT r.id, r.name, o.subject FROM resources r JOIN owners o ON o.id = r.owner_id')
    const mine = rows.filter((row) => row.subject.startsWith('owner-'))
    t.comment(`${String(writes.length)} writes in ${String(Date.now() - started)} ms: ` +
      `${[...statuses].sort().map(([k, v]) => `${String(v)}× ${k}`).join(', ')}; ${String(mine.length)} rows remain`)

    t.same(writes.filter((w) => w.status >= 500), [], 'never a 500')
    const foreign = writes.filter((w) => w.kind !== 'create' && w.status < 300 && ownerOf.get(w.id ?? 0) !== w.owner)
    t.same(foreign, [], 'no write on another owner\'s resource succeeded')
    // 403: another owner's resource; 404: gone; 409: the name is taken.
    const expected: Record<Write['kind'], number[]> = {
      create: [201, 409], rename: [200, 403, 404, 409], delete: [204, 403, 404],
    }
    t.same(writes.filter((w) => !expected[w.kind].includes(w.status)), [], 'only the statuses each write may get')

    const names = new Set<string>()
    for (const row of mine) {
      const key = `${row.subject} ${row.name}`
      t.notOk(names.has(key), `${key} is held once`)
      names.add(key)
    }
    const violations: string[] = []
    const rowById = new Map(mine.map((row) => [row.id, row]))
    for (const id of ids) {
      const succeeded = writes.filter((w) => w.id === id && w.status < 300)
      const deleted = succeeded.find((w) => w.kind === 'delete')
      const row = rowById.get(id)
      if (deleted !== undefined) {
        if (row !== undefined) violations.push(`${String(id)} answered 204 but is still there`)
        const later = succeeded.filter((w) => w.kind !== 'delete' && w.sentAt > deleted.answeredAt)
        if (later.length > 0) violations.push(`${String(id)} written after its delete was answered`)
        continue
      }
      if (row === undefined) {
        violations.push(`${String(id)} was created and never deleted, yet is gone`)
        continue
      }
      // The final name is a successful write's that no other successful write began after.
      const last = succeeded.filter((w) => !succeeded.some((o) => o !== w && o.sentAt > w.answeredAt))
      if (!last.some((w) => w.name === row.name)) {
        const candidates = last.map((w) => String(w.name)).join(', ')
        violations.push(`${String(id)} is named ${row.name}, not by any last write (${candidates})`)
      }
    }
    t.same(violations, [], 'the final state is one a serial order, consistent with real time, gives')
  })
})
