import t, { type Test } from 'tap'
import type { TestDatabase } from './fixtures/databases.js'
import {
  BOB, MAX_ID, PLAIN_JSON, assertInvalid, create, onEachDialect, type Page, type Resource, type World,
} from './helpers/resource.js'

// Resource v1: GET / pages through every resource by id (see helpers/resource.ts).

/** Every resource as the API should show it, read straight from the tables. */
async function resourcesInDatabase(db: TestDatabase): Promise<Resource[]> {
  const rows = await db.query<{ id: number, name: string, owner_id: number, subject: string, owner_name: string }>(
    'SELECT r.id, r.name, o.id AS owner_id, o.subject, o.name AS owner_name'
      + ' FROM resources r JOIN owners o ON o.id = r.owner_id ORDER BY r.id',
  )
  return rows.map((row) => ({
    id: row.id,
    name: row.name,
    owner: { id: row.owner_id, subject: row.subject, name: row.owner_name },
  }))
}

/** Many rows for one owner at once, straight into the table. */
async function insertResources(db: TestDatabase, ownerId: number, prefix: string, count: number): Promise<void> {
  if (db.dialect === 'sqlite') {
    await db.query(
      'WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?)'
        + ' INSERT INTO resources (owner_id, name) SELECT ?, ? || n FROM g',
      [count, ownerId, prefix],
    )
  } else if (db.dialect === 'mysql') {
    // MySQL stops recursive CTEs at 1,000 rows by default: one multi-row insert instead (mysql2 expands the rows).
    const rows = Array.from({ length: count }, (_, i) => [ownerId, `${prefix}${String(i + 1)}`])
    await db.query('INSERT INTO resources (owner_id, name) VALUES ?', [rows])
  } else {
    await db.query(
      'INSERT INTO resources (owner_id, name) SELECT ?::int, ?::text || g FROM generate_series(1, ?::int) AS g',
      [ownerId, prefix, count],
    )
  }
}

/** Follows `next` from the first page until it is null; bounded by `maxPages`. */
async function walk(t: Test, world: World, token: string, first: string, limit: number,
  maxPages = 100): Promise<Resource[]> {
  const seen: Resource[] = []
  let url: string | null = first
  let pages = 0
  let wellFormed = true
  while (url !== null) {
    if (++pages > maxPages) {
      t.fail(`more than ${String(maxPages)} pages`)
      break
    }
    const reply = await world.call('GET', url, { token })
    if (reply.status !== 200) {
      t.fail(`page ${String(pages)} (${url}) answers 200`, { status: reply.status, body: reply.text })
      return seen
    }
    const page = reply.body as Page
    const lastId = page.resources.at(-1)?.id
    const expectedNext = page.next === null ? null : `${world.base}/?after=${String(lastId)}&limit=${String(limit)}`
    const link = reply.headers.link
    const ok = Object.keys(page).sort().join() === 'next,resources'
      && (page.next === null || page.resources.length === limit)
      && page.next === expectedNext
      && link === (page.next === null ? undefined : `<${page.next}>; rel="next"`)
    if (!ok) {
      wellFormed = false
      t.fail(`page ${String(pages)} (${url}) is well formed`, {
        status: reply.status,
        next: page.next,
        expectedNext,
        linkHeader: link,
        count: page.resources.length,
      })
    }
    seen.push(...page.resources)
    url = page.next
  }
  t.ok(wellFormed,
    `${String(pages)} pages of ${String(limit)}: 200, {resources, next}, full pages until the last,`
      + ' next and Link agree')
  return seen
}

function ids(resources: { id: number }[]): number[] {
  return resources.map((resource) => resource.id)
}

function ascending(values: number[]): boolean {
  return values.every((value, i) => i === 0 || value > (values[i - 1] ?? Infinity))
}

onEachDialect(t, (t, world) => {
  const { db } = world

  t.test('GET / pages through every resource by id: limit, after, next and Link', async (t) => {
    const pagerSubject = world.fresh('pager')
    const pagerToken = await world.person(pagerSubject, 'Pager')
    const anchor = await create(world, pagerToken, 'page-0')
    const started = Date.now()
    await insertResources(db, anchor.owner.id, 'page-', 2500)
    t.comment(`2,500 rows inserted in ${String(Date.now() - started)} ms`)
    const reader = await world.token(BOB, 'read')
    const all = await resourcesInDatabase(db)
    t.ok(all.length > 2500, `${String(all.length)} resources in the database`)

    const first = await world.call('GET', `${world.base}/`, { token: reader })
    t.equal(first.status, 200)
    t.match(first.headers['content-type'], PLAIN_JSON)
    const page = first.body as Page
    t.strictSame(page.resources, all.slice(0, 100),
      'the first page: 100 by default, in id order, shaped as the database says')
    const hundredth = all[99]?.id ?? 0
    t.equal(page.next, `${world.base}/?after=${String(hundredth)}&limit=100`,
      'next is absolute and carries after and limit')
    t.equal(first.headers.link, `<${page.next ?? ''}>; rel="next"`, 'the Link header says the same')
    const bare = await world.call('GET', world.base, { token: reader })
    t.strictSame(bare.body, page, 'the same without the trailing slash')

    const walked = await walk(t, world, reader, `${world.base}/`, 100)
    t.equal(walked.length, all.length, 'the walk sees as many resources as there are rows')
    t.equal(new Set(ids(walked)).size, walked.length, 'no duplicates')
    t.ok(ascending(ids(walked)), 'ascending ids')
    t.strictSame(walked, all, 'no gaps: every row, each exactly once, as the database has it')

    const big = await walk(t, world, reader, `${world.base}/?limit=1000`, 1000)
    t.strictSame(ids(big), ids(all), 'the same with pages of 1000')
    const odd = await walk(t, world, reader, `${world.base}/?limit=7&after=${String(all[all.length - 50]?.id ?? 0)}`, 7)
    t.strictSame(ids(odd), ids(all.slice(-49)), 'from a cursor, with pages of 7')

    const sixthLast = String(all[all.length - 6]?.id ?? 0)
    const lastFive = await world.call('GET', `${world.base}/?after=${sixthLast}&limit=5`, { token: reader })
    t.strictSame((lastFive.body as Page).resources, all.slice(-5), 'exactly the rest')
    t.equal((lastFive.body as Page).next, null, 'a page that ends with the last row has no next')
    t.equal(lastFive.headers.link, undefined, 'and no Link')
    const beyond = await world.call('GET', `${world.base}/?after=${String(all.at(-1)?.id ?? 0)}`, { token: reader })
    t.strictSame(beyond.body, { resources: [], next: null }, 'after the last id: an empty page')
    t.equal(beyond.headers.link, undefined)
    const maxAfter = await world.call('GET', `${world.base}/?after=${String(MAX_ID)}&limit=1000`, { token: reader })
    t.strictSame(maxAfter.body, { resources: [], next: null }, 'after the largest id there is')

    for (const [query, field] of [
      ['limit=0', '/limit'], ['limit=1001', '/limit'], ['limit=-1', '/limit'], ['limit=1.5', '/limit'],
      ['limit=abc', '/limit'], ['limit=', '/limit'],
      ['after=-1', '/after'], ['after=abc', '/after'], ['after=1.5', '/after'],
      [`after=${String(MAX_ID + 1)}`, '/after'],
    ] as const) {
      const refused = await world.call('GET', `${world.base}/?${query}`, { token: reader })
      assertInvalid(t, refused, 'query', field, `?${query}`)
    }

    // Rows deleted in the middle: a run across the first page boundary and every third of a stretch.
    const bulk = all.filter((resource) => resource.owner.id === anchor.owner.id)
    const doomed = [...bulk.slice(95, 106), ...bulk.slice(400, 700).filter((_, i) => i % 3 === 0)]
    for (let i = 0; i < doomed.length; i += 100) {
      const chunk = ids(doomed.slice(i, i + 100))
      await db.query(`DELETE FROM resources WHERE id IN (${chunk.map(() => '?').join(', ')})`, chunk)
    }
    const remaining = await resourcesInDatabase(db)
    t.equal(remaining.length, all.length - doomed.length, `${String(doomed.length)} rows deleted`)
    const sparse = await walk(t, world, reader, `${world.base}/`, 100)
    t.strictSame(sparse, remaining, 'the walk over deleted rows: every remaining row once, full pages')
    const gone = new Set(ids(doomed))
    t.notOk(sparse.some((resource) => gone.has(resource.id)), 'no deleted row shows up')

    // Rows deleted through the API while a walk is under way, the cursor row among them.
    const pageOne = (await world.call('GET', `${world.base}/?limit=100`, { token: reader })).body as Page
    const cursor = pageOne.resources.at(-1)
    const ahead = remaining.slice(100, 103)
    const pagerOwned = [cursor, ...ahead].filter((resource) => resource?.owner.id === anchor.owner.id)
    t.equal(pagerOwned.length, 4, 'the cursor row and the next three are the pager\'s to delete')
    for (const resource of pagerOwned) {
      const deleted = await world.call('DELETE', world.url(String(resource?.id)), { token: pagerToken })
      t.equal(deleted.status, 204, `deleted ${String(resource?.id)} mid-walk`)
    }
    const rest = await walk(t, world, reader, pageOne.next ?? '', 100)
    t.strictSame(ids(rest), ids(remaining.slice(103)),
      'the walk goes on after a deleted cursor, without the rows deleted ahead of it')
    const seen = [...ids(pageOne.resources), ...ids(rest)]
    t.equal(new Set(seen).size, seen.length, 'no duplicates across the deletion')
  })
})
