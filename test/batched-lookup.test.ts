import t from 'tap'
import { batchedLookup } from '#src/plugins/database/batched-lookup.js'

// The look-ups of one moment asked as one statement (PostgreSQL's get by id; the real database's answers are checked
// by resource-races.test.ts on every dialect). Here the statement is a function that records what it was asked.

interface Row { id: number, name: string }

function table(rows: Row[]) {
  const asked: number[][] = []
  const fetch = async (ids: number[]): Promise<Row[]> => {
    asked.push(ids)
    return rows.filter((row) => ids.includes(row.id))
  }
  return { asked, lookup: batchedLookup(fetch, (row) => row.id) }
}

t.test('the look-ups of one moment are one statement of their distinct keys, each answered with its row', async (t) => {
  const { asked, lookup } = table([{ id: 1, name: 'one' }, { id: 2, name: 'two' }])
  const answers = await Promise.all([lookup(2), lookup(1), lookup(2), lookup(3)])
  t.strictSame(answers, [{ id: 2, name: 'two' }, { id: 1, name: 'one' }, { id: 2, name: 'two' }, undefined])
  t.strictSame(asked, [[2, 1, 3]], 'one statement, each key once')
  t.strictSame(await lookup(1), { id: 1, name: 'one' })
  t.strictSame(asked, [[2, 1, 3], [1]], 'a look-up of a later moment is a statement of its own')
})

t.test('a statement that fails fails every look-up in it, and the next moment is asked again', async (t) => {
  let fail = true
  const lookup = batchedLookup(async (ids: number[]): Promise<Row[]> => {
    if (fail) throw new Error('the database is gone')
    return ids.map((id) => ({ id, name: String(id) }))
  }, (row) => row.id)
  const outcomes = await Promise.allSettled([lookup(1), lookup(2), lookup(1)])
  t.strictSame(outcomes.map((o) => o.status), ['rejected', 'rejected', 'rejected'])
  t.match((outcomes[0] as PromiseRejectedResult).reason, { message: 'the database is gone' })
  fail = false
  t.strictSame(await lookup(2), { id: 2, name: '2' })
})
