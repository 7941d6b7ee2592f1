import t, { type Test } from 'tap'
import { resolveAuthSettings } from '#src/plugins/auth/settings.js'
import { parseChallenge, Problems, READ_SCOPE, REQUEST_TIMEOUT_MS, WRITE_SCOPE } from './helpers/auth.js'
import { startApp } from './helpers/app.js'
import { freshDatabase, openTestDatabase, type Dialect, type TestDatabase } from './helpers/databases.js'
import { startTestProvider, type TestClientOptions, type TestProvider } from './helpers/oidc-provider.js'
import type { Problem as ProblemBody } from '#src/lib/problem.js'

// Resource v1 over real HTTP with real tokens, once on a SQLite file and once on a fresh PostgreSQL
// database. Every write is checked in the database itself, through a connection of the test's own.

const PREFIX = '/api/resource/v1'
const PROBLEM_JSON = /^application\/problem\+json/
const PLAIN_JSON = /^application\/json/
const VALIDATION = 'https://github.com/MrMatAP/mrmat-ts-api-fastify/blob/main/README.md#problem-validation-failed'
const BODY_LIMIT = 1024 * 1024
const MAX_ID = 2147483647


/** Clients with client-credentials tokens: `sub` is the client id, `preferred_username` the display name. */
const ALICE: TestClientOptions = { id: 'alice', secret: 'alice-secret', preferredUsername: 'Alice' }
const BOB: TestClientOptions = { id: 'bob', secret: 'bob-secret', preferredUsername: 'Bob' }
/** No preferred_username: the owner's name falls back to the client id. */
const NAMELESS: TestClientOptions = { id: 'nameless', secret: 'nameless-secret' }

type Access = 'read' | 'write' | 'both'
const SCOPES: Record<Access, string> = { read: READ_SCOPE, write: WRITE_SCOPE, both: `${READ_SCOPE} ${WRITE_SCOPE}` }

interface Owner {
  id: number
  subject: string
  name: string
}

interface Resource {
  id: number
  name: string
  owner: Owner
}

interface Page {
  resources: Resource[]
  next: string | null
}


interface OwnerRow {
  id: number
  subject: string
  name: string
}

interface ResourceRow {
  id: number
  owner_id: number
  name: string
}

interface Snapshot {
  owners: OwnerRow[]
  resources: ResourceRow[]
}

interface Reply {
  status: number
  headers: Headers
  text: string
  /** The body parsed as JSON; undefined when empty or not JSON. */
  body: unknown
}

interface CallOptions {
  token?: string
  /** Sent as JSON with content-type application/json. */
  json?: unknown
  /** Sent as it is, with `contentType` when given. */
  raw?: string
  contentType?: string
}

/** One request, bounded in time, its body read in full. */
async function call(method: string, url: string, options: CallOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = {}
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
  let body: string | undefined
  if (options.json !== undefined) {
    body = JSON.stringify(options.json)
    headers['content-type'] = 'application/json'
  } else if (options.raw !== undefined) {
    body = options.raw
  }
  if (options.contentType !== undefined) headers['content-type'] = options.contentType
  const res = await fetch(url, { method, headers, body, redirect: 'manual', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
  const text = await res.text()
  let parsed: unknown
  try {
    parsed = text === '' ? undefined : JSON.parse(text)
  } catch {
    parsed = undefined
  }
  return { status: res.status, headers: res.headers, text, body: parsed }
}

/** A JSON object opened by `head`, padded with spaces and closed to exactly `bytes` bytes. */
function padded(head: string, bytes: number): string {
  const body = `${head}${' '.repeat(bytes - Buffer.byteLength(head) - 1)}}`
  if (Buffer.byteLength(body) !== bytes) throw new Error(`padded body is ${String(Buffer.byteLength(body))} bytes, not ${String(bytes)}`)
  return body
}

/** An RFC 9457 problem of the status, with the request id of its header; `expected` is matched over it. */
function assertProblem(t: Test, reply: Reply, status: number, what: string, expected: Record<string, unknown> = {}): void {
  t.equal(reply.status, status, `${what}: ${String(status)}`)
  t.match(reply.headers.get('content-type'), PROBLEM_JSON, `${what}: application/problem+json`)
  t.match(reply.body, {
    type: String,
    title: String,
    status,
    detail: String,
    instance: String,
    requestId: reply.headers.get('x-request-id') ?? 'no x-request-id header',
    ...expected,
  }, `${what}: problem body`)
}

/** A validation problem naming the offending field. */
function assertInvalid(t: Test, reply: Reply, where: 'body' | 'query' | 'path', field: string, what: string): void {
  assertProblem(t, reply, 400, what, { type: VALIDATION, title: 'Validation failed' })
  const errors = (reply.body as ProblemBody | undefined)?.errors ?? []
  t.ok(errors.some((error) => error.in === where && error.name === field), `${what}: errors name ${where} ${field}`, { errors })
}

/** A resource with exactly the documented fields. */
function assertResource(t: Test, reply: Reply, status: number, expected: Resource, what: string): void {
  t.equal(reply.status, status, `${what}: ${String(status)}`)
  t.match(reply.headers.get('content-type'), PLAIN_JSON, `${what}: application/json`)
  t.strictSame(reply.body, expected, `${what}: exactly id, name, owner {id, subject, name}`)
}

async function snapshot(db: TestDatabase): Promise<Snapshot> {
  return {
    owners: await db.query<OwnerRow>('SELECT id, subject, name FROM owners ORDER BY id'),
    resources: await db.query<ResourceRow>('SELECT id, owner_id, name FROM resources ORDER BY id'),
  }
}

async function ownersOf(db: TestDatabase, subject: string): Promise<OwnerRow[]> {
  return db.query<OwnerRow>('SELECT id, subject, name FROM owners WHERE subject = ?', [subject])
}

async function resourceRow(db: TestDatabase, id: number): Promise<ResourceRow | undefined> {
  return (await db.query<ResourceRow>('SELECT id, owner_id, name FROM resources WHERE id = ?', [id]))[0]
}

/** Every resource as the API should show it, read straight from the tables. */
async function resourcesInDatabase(db: TestDatabase): Promise<Resource[]> {
  const rows = await db.query<{ id: number, name: string, owner_id: number, subject: string, owner_name: string }>(
    'SELECT r.id, r.name, o.id AS owner_id, o.subject, o.name AS owner_name FROM resources r JOIN owners o ON o.id = r.owner_id ORDER BY r.id',
  )
  return rows.map((row) => ({ id: row.id, name: row.name, owner: { id: row.owner_id, subject: row.subject, name: row.owner_name } }))
}

/** Many rows for one owner at once, straight into the table. */
async function insertResources(db: TestDatabase, ownerId: number, prefix: string, count: number): Promise<void> {
  if (db.dialect === 'sqlite') {
    await db.query(
      'WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?) INSERT INTO resources (owner_id, name) SELECT ?, ? || n FROM g',
      [count, ownerId, prefix],
    )
  } else {
    await db.query(
      'INSERT INTO resources (owner_id, name) SELECT ?::int, ?::text || g FROM generate_series(1, ?::int) AS g',
      [ownerId, prefix, count],
    )
  }
}

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

/** What every behaviour test gets: the database, the provider, the API's base URL and tokens. */
interface World {
  db: TestDatabase
  provider: TestProvider
  origin: string
  /** http://127.0.0.1:<port>/api/resource/v1, no trailing slash. */
  base: string
  /** A client-credentials token of a registered client. */
  token(client: TestClientOptions, access?: Access): Promise<string>
  /** A token signed by the provider for any subject and display name. */
  person(subject: string, name: string, access?: Access): Promise<string>
  /** A subject no other test has used. */
  fresh(label: string): string
}

async function setUp(t: Test, db: TestDatabase): Promise<World> {
  const provider = await startTestProvider(t, { clients: [ALICE, BOB, NAMELESS] })
  const auth = resolveAuthSettings({ issuer: provider.issuer, audience: provider.audience })
  const database = await openTestDatabase(db)
  const { url } = await startApp(t, database, { auth })
  const tokens = new Map<string, Promise<string>>()
  let counter = 0
  return {
    db,
    provider,
    origin: url,
    base: `${url}${PREFIX}`,
    async token(client, access = 'both') {
      const key = `${client.id} ${access}`
      let token = tokens.get(key)
      if (token === undefined) {
        token = provider.jwt({ client, scope: SCOPES[access] })
        tokens.set(key, token)
      }
      return token
    },
    async person(subject, name, access = 'both') {
      return provider.sign({ sub: subject, client_id: subject, preferred_username: name, scope: SCOPES[access] })
    },
    fresh(label) {
      counter += 1
      return `${label}-${String(counter)}`
    },
  }
}

/** A setup step: creates a resource and returns it, or throws. */
async function create(world: World, token: string, name: string): Promise<Resource> {
  const reply = await call('POST', `${world.base}/`, { token, json: { name } })
  if (reply.status !== 201) throw new Error(`creating ${name}: ${String(reply.status)} ${reply.text}`)
  return reply.body as Resource
}

/** Follows `next` from the first page until it is null; bounded by `maxPages`. */
async function walk(t: Test, world: World, token: string, first: string, limit: number, maxPages = 100): Promise<Resource[]> {
  const seen: Resource[] = []
  let url: string | null = first
  let pages = 0
  let wellFormed = true
  while (url !== null) {
    if (++pages > maxPages) {
      t.fail(`more than ${String(maxPages)} pages`)
      break
    }
    const reply = await call('GET', url, { token })
    if (reply.status !== 200) {
      t.fail(`page ${String(pages)} (${url}) answers 200`, { status: reply.status, body: reply.text })
      return seen
    }
    const page = reply.body as Page
    const lastId = page.resources.at(-1)?.id
    const expectedNext = page.next === null ? null : `${world.base}/?after=${String(lastId)}&limit=${String(limit)}`
    const link = reply.headers.get('link')
    const ok = Object.keys(page).sort().join() === 'next,resources'
      && (page.next === null || page.resources.length === limit)
      && page.next === expectedNext
      && link === (page.next === null ? null : `<${page.next}>; rel="next"`)
    if (!ok) {
      wellFormed = false
      t.fail(`page ${String(pages)} (${url}) is well formed`, { status: reply.status, next: page.next, expectedNext, linkHeader: link, count: page.resources.length })
    }
    seen.push(...page.resources)
    url = page.next
  }
  t.ok(wellFormed, `${String(pages)} pages of ${String(limit)}: 200, {resources, next}, full pages until the last, next and Link agree`)
  return seen
}

function ids(resources: { id: number }[]): number[] {
  return resources.map((resource) => resource.id)
}

function ascending(values: number[]): boolean {
  return values.every((value, i) => i === 0 || value > (values[i - 1] ?? Infinity))
}

function behaviour(t: Test, world: World): void {
  const { db } = world

  t.test('POST creates a resource owned by the caller, with an absolute Location that serves it', async (t) => {
    const token = await world.token(ALICE)
    const reply = await call('POST', `${world.base}/`, { token, json: { name: '  first resource  ' } })
    const created = reply.body as Resource
    const [owner] = await ownersOf(db, 'alice')
    t.ok(owner, 'the owner row was made from the token')
    t.strictSame(owner, { id: owner?.id, subject: 'alice', name: 'Alice' }, 'owner row: sub and preferred_username')
    const expected = { id: created.id, name: 'first resource', owner: { id: owner?.id ?? 0, subject: 'alice', name: 'Alice' } }
    assertResource(t, reply, 201, expected, 'POST')
    t.type(created.id, 'number')
    t.ok(Number.isInteger(created.id) && created.id > 0, 'the id is a positive integer')
    t.strictSame(await resourceRow(db, created.id), { id: created.id, owner_id: owner?.id, name: 'first resource' }, 'the row, trimmed')

    const location = reply.headers.get('location') ?? ''
    t.equal(location, `${world.base}/${String(created.id)}`, 'Location is the absolute URL of the resource')
    t.equal(new URL(location).origin, world.origin, 'Location is absolute, on this server')
    assertResource(t, await call('GET', location, { token }), 200, expected, 'GET Location with the same token')
    assertResource(t, await call('GET', `${world.base}/${String(created.id)}/`, { token }), 200, expected, 'GET with a trailing slash')

    const second = await call('POST', world.base, { token, json: { name: 'second resource' } })
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
      const reply = await call('POST', `${world.base}/`, { token, json: { name: sent } })
      t.equal(reply.status, 201, `${what}: 201`)
      const id = (reply.body as Resource | undefined)?.id ?? 0
      t.equal((reply.body as Resource | undefined)?.name, stored, `${what}: answered`)
      t.equal((await resourceRow(db, id))?.name, stored, `${what}: stored`)
    }

    const before = await snapshot(db)
    for (const name of ['x', '  x  ', 'padded name']) {
      const reply = await call('POST', `${world.base}/`, { token, json: { name } })
      assertProblem(t, reply, 409, `the caller's own name again (${JSON.stringify(name)})`, { title: 'Conflict', detail: /already own/ })
    }
    t.strictSame(await snapshot(db), before, 'a 409 writes nothing')

    const bob = await call('POST', `${world.base}/`, { token: await world.token(BOB), json: { name: 'x' } })
    t.equal(bob.status, 201, 'another owner may use the same name')
    t.equal((bob.body as Resource).owner.subject, 'bob')
  })

  t.test('GET /:id answers the resource, 404 for none and 400 for an id that is not a positive integer', async (t) => {
    const token = await world.token(BOB, 'read')
    const mine = await create(world, await world.token(BOB), 'bob-get')
    assertResource(t, await call('GET', `${world.base}/${String(mine.id)}`, { token }), 200, mine, 'GET with a read-only token')

    const missing = await call('GET', `${world.base}/${String(MAX_ID)}`, { token })
    assertProblem(t, missing, 404, 'an unknown id', { type: 'about:blank', title: 'Not Found', detail: `There is no resource ${String(MAX_ID)}`, instance: `${PREFIX}/${String(MAX_ID)}` })

    for (const id of ['abc', '0', '-1', '1.5', '99999999999', String(MAX_ID + 1), '%20']) {
      assertInvalid(t, await call('GET', `${world.base}/${id}`, { token }), 'path', '/id', `GET /${id}`)
    }
    const write = await world.token(BOB)
    for (const id of ['abc', '0', '-1', '1.5', '99999999999']) {
      assertInvalid(t, await call('PUT', `${world.base}/${id}`, { token: write, json: { name: 'whatever' } }), 'path', '/id', `PUT /${id}`)
      assertInvalid(t, await call('DELETE', `${world.base}/${id}`, { token: write }), 'path', '/id', `DELETE /${id}`)
    }
  })

  t.test('the owner row is made on the first write and its name kept current', async (t) => {
    const subject = world.fresh('person')
    await call('GET', `${world.base}/`, { token: await world.person(subject, 'Reader', 'read') })
    t.strictSame(await ownersOf(db, subject), [], 'reading makes no owner row')

    const first = await create(world, await world.person(subject, 'First Name'), 'owned-1')
    t.equal(first.owner.name, 'First Name')
    const [row] = await ownersOf(db, subject)
    t.strictSame(row, { id: first.owner.id, subject, name: 'First Name' }, 'made from sub and preferred_username')

    const second = await create(world, await world.person(subject, 'Second Name'), 'owned-2')
    t.strictSame(second.owner, { id: first.owner.id, subject, name: 'Second Name' }, 'POST: same owner, new name')
    const readFirst = await call('GET', `${world.base}/${String(first.id)}`, { token: await world.person(subject, 'Second Name') })
    t.equal((readFirst.body as Resource).owner.name, 'Second Name', 'older resources show the current name')

    const renamed = await call('PUT', `${world.base}/${String(first.id)}`, { token: await world.person(subject, 'Third Name'), json: { name: 'owned-1b' } })
    assertResource(t, renamed, 200, { id: first.id, name: 'owned-1b', owner: { id: first.owner.id, subject, name: 'Third Name' } }, 'PUT: new name')
    t.strictSame(await ownersOf(db, subject), [{ id: first.owner.id, subject, name: 'Third Name' }], 'PUT updated the owner row')

    const deleted = await call('DELETE', `${world.base}/${String(first.id)}`, { token: await world.person(subject, 'Fourth Name') })
    t.equal(deleted.status, 204, 'DELETE with yet another name')
    const left = await call('GET', `${world.base}/${String(second.id)}`, { token: await world.person(subject, 'Fourth Name') })
    t.equal((left.body as Resource).owner.name, 'Fourth Name', 'DELETE, a write, keeps the name current too')
    t.strictSame(await ownersOf(db, subject), [{ id: first.owner.id, subject, name: 'Fourth Name' }], 'DELETE updated the owner row')

    const nameless = await create(world, await world.token(NAMELESS), 'nameless-1')
    t.strictSame(nameless.owner, { id: nameless.owner.id, subject: 'nameless', name: 'nameless' }, 'no preferred_username: the client id names the owner')
  })

  t.test('PUT renames the caller\'s resource: 200, 404, 409, and its own name again', async (t) => {
    const token = await world.token(ALICE)
    const resource = await create(world, token, 'to-rename')
    const other = await create(world, token, 'taken')

    const renamed = await call('PUT', `${world.base}/${String(resource.id)}`, { token, json: { name: '  renamed  ' } })
    assertResource(t, renamed, 200, { ...resource, name: 'renamed' }, 'rename')
    t.equal((await resourceRow(db, resource.id))?.name, 'renamed', 'the row, trimmed')

    const same = await call('PUT', `${world.base}/${String(resource.id)}`, { token, json: { name: 'renamed' } })
    assertResource(t, same, 200, { ...resource, name: 'renamed' }, 'its own current name')
    const samePadded = await call('PUT', `${world.base}/${String(resource.id)}/`, { token, json: { name: ' renamed ' } })
    assertResource(t, samePadded, 200, { ...resource, name: 'renamed' }, 'its own current name, padded, with a trailing slash')

    let before = await snapshot(db)
    for (const name of ['taken', '  taken ']) {
      const clash = await call('PUT', `${world.base}/${String(resource.id)}`, { token, json: { name } })
      assertProblem(t, clash, 409, `a name the caller already uses (${JSON.stringify(name)})`, { title: 'Conflict' })
    }
    t.strictSame(await snapshot(db), before, 'a 409 changes nothing')
    t.equal((await resourceRow(db, other.id))?.name, 'taken')

    const bobsName = (await create(world, await world.token(BOB), 'bob-has-this')).name
    const bobs = await call('PUT', `${world.base}/${String(resource.id)}`, { token, json: { name: bobsName } })
    t.equal(bobs.status, 200, 'a name another owner uses is fine')

    before = await snapshot(db)
    const missing = await call('PUT', `${world.base}/${String(MAX_ID)}`, { token, json: { name: 'ghost' } })
    assertProblem(t, missing, 404, 'an unknown id', { detail: `There is no resource ${String(MAX_ID)}` })
    t.strictSame(await snapshot(db), before, 'a 404 changes nothing')
  })

  t.test('DELETE: 204 without a body, then 404', async (t) => {
    const token = await world.token(ALICE)
    const resource = await create(world, token, 'to-delete')
    const keep = await create(world, token, 'to-keep')

    const deleted = await call('DELETE', `${world.base}/${String(resource.id)}`, { token })
    t.equal(deleted.status, 204)
    t.equal(deleted.text, '', 'no body')
    t.equal(deleted.headers.get('content-type'), null, 'no content type')
    t.equal(await resourceRow(db, resource.id), undefined, 'the row is gone')
    t.ok(await resourceRow(db, keep.id), 'the other resource stays')
    t.equal((await ownersOf(db, 'alice')).length, 1, 'the owner stays')

    assertProblem(t, await call('GET', `${world.base}/${String(resource.id)}`, { token }), 404, 'GET after DELETE')
    const before = await snapshot(db)
    assertProblem(t, await call('DELETE', `${world.base}/${String(resource.id)}`, { token }), 404, 'DELETE again', { detail: `There is no resource ${String(resource.id)}` })
    assertProblem(t, await call('DELETE', `${world.base}/${String(MAX_ID)}`, { token }), 404, 'DELETE of an unknown id')
    assertProblem(t, await call('PUT', `${world.base}/${String(resource.id)}`, { token, json: { name: 'back' } }), 404, 'PUT after DELETE')
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
      const put = await call('PUT', `${world.base}/${String(victim.id)}`, { token, json: { name: `taken-over-by-${who}` } })
      assertProblem(t, put, 403, `${who} renaming the other's`, { title: 'Forbidden', detail: `Resource ${String(victim.id)} belongs to someone else` })
      const putSame = await call('PUT', `${world.base}/${String(victim.id)}`, { token, json: { name: 'both-have-this' } })
      assertProblem(t, putSame, 403, `${who} renaming the other's to its current name`)
      const del = await call('DELETE', `${world.base}/${String(victim.id)}`, { token })
      assertProblem(t, del, 403, `${who} deleting the other's`, { detail: `Resource ${String(victim.id)} belongs to someone else` })
    }
    t.strictSame(await snapshot(db), before, 'the rows are unchanged')

    assertResource(t, await call('GET', `${world.base}/${String(his.id)}`, { token: alice }), 200, his, 'alice reads bob\'s')
    assertResource(t, await call('GET', `${world.base}/${String(hers.id)}`, { token: bob }), 200, hers, 'bob reads alice\'s')
    const listed = await call('GET', `${world.base}/?after=${String(hers.id - 1)}&limit=1000`, { token: bob })
    const found = (listed.body as Page).resources.filter((r) => r.id === hers.id || r.id === his.id)
    t.strictSame(found, [hers, his], 'both appear in the list, in id order')

    t.equal((await call('PUT', `${world.base}/${String(hers.id)}`, { token: alice, json: { name: 'still hers' } })).status, 200, 'alice still renames her own')
    t.equal((await call('DELETE', `${world.base}/${String(his.id)}`, { token: bob })).status, 204, 'bob still deletes his own')
  })

  t.test('scopes: reading needs the read scope, writing the write scope, and no token is a 401', async (t) => {
    const full = await world.token(ALICE)
    const readOnly = await world.token(ALICE, 'read')
    const writeOnly = await world.token(ALICE, 'write')
    const resource = await create(world, full, 'scoped')
    const item = `${world.base}/${String(resource.id)}`

    const before = await snapshot(db)
    const writes: [string, string, CallOptions][] = [
      ['POST', `${world.base}/`, { json: { name: 'read-only-create' } }],
      ['PUT', item, { json: { name: 'read-only-rename' } }],
      ['DELETE', item, {}],
    ]
    for (const [method, url, options] of writes) {
      const reply = await call(method, url, { ...options, token: readOnly })
      assertProblem(t, reply, 403, `${method} with a read-only token`, { type: Problems.insufficientScope, title: 'Insufficient scope' })
      const challenge = parseChallenge(reply.headers.get('www-authenticate'))
      t.match(challenge, { scheme: 'Bearer', params: { error: 'insufficient_scope', scope: WRITE_SCOPE } }, `${method}: the challenge names the write scope`)
    }
    const newcomer = world.fresh('read-only-newcomer')
    const refused = await call('POST', `${world.base}/`, { token: await world.person(newcomer, 'Newcomer', 'read'), json: { name: 'nope' } })
    t.equal(refused.status, 403, 'a read-only newcomer cannot create')
    t.strictSame(await snapshot(db), before, 'read-only tokens changed nothing, made no owner row')

    for (const url of [`${world.base}/`, item]) {
      const reply = await call('GET', url, { token: writeOnly })
      assertProblem(t, reply, 403, `GET ${url.slice(world.origin.length)} with a write-only token`, { type: Problems.insufficientScope })
      t.match(parseChallenge(reply.headers.get('www-authenticate')), { params: { error: 'insufficient_scope', scope: READ_SCOPE } }, 'the challenge names the read scope')
      t.equal((await call('GET', url, { token: readOnly })).status, 200, `GET ${url.slice(world.origin.length)} with a read-only token`)
    }

    const created = await call('POST', `${world.base}/`, { token: writeOnly, json: { name: 'write-only-create' } })
    t.equal(created.status, 201, 'a write-only token creates')
    const createdId = (created.body as Resource).id
    t.equal((await call('PUT', `${world.base}/${String(createdId)}`, { token: writeOnly, json: { name: 'write-only-rename' } })).status, 200, 'and renames')
    t.equal((await call('DELETE', `${world.base}/${String(createdId)}`, { token: writeOnly })).status, 204, 'and deletes')

    const anonymous = await snapshot(db)
    for (const [method, url, options] of [['GET', `${world.base}/`, {}], ['GET', item, {}], ...writes] as [string, string, CallOptions][]) {
      const reply = await call(method, url, options)
      assertProblem(t, reply, 401, `${method} without a token`, { type: Problems.tokenRequired })
      t.match(reply.headers.get('www-authenticate'), /^Bearer realm=/, `${method}: a Bearer challenge`)
    }
    t.strictSame(await snapshot(db), anonymous, 'requests without a token changed nothing')
  })

  t.test('invalid bodies are refused with a problem and write nothing', async (t) => {
    interface BadBody {
      what: string
      raw?: string
      contentType?: string
      status: number
      /** The body field `errors` must name, for validation failures. */
      field?: string
    }
    const json = 'application/json'
    const cases: BadBody[] = [
      { what: 'a number for the name', raw: '{"name": 1}', status: 400, field: '/name' },
      { what: 'a boolean for the name', raw: '{"name": true}', status: 400, field: '/name' },
      { what: 'an array for the name', raw: '{"name": ["x"]}', status: 400, field: '/name' },
      { what: 'an object for the name', raw: '{"name": {"first": "x"}}', status: 400, field: '/name' },
      { what: 'null for the name', raw: '{"name": null}', status: 400, field: '/name' },
      { what: 'an extra field', raw: '{"name": "fine", "extra": 1}', status: 400, field: '/extra' },
      { what: 'an owner of its own choosing', raw: '{"name": "fine", "owner": {"subject": "someone-else"}}', status: 400, field: '/owner' },
      { what: 'an id of its own choosing', raw: '{"id": 1, "name": "fine"}', status: 400, field: '/id' },
      { what: 'an empty object', raw: '{}', status: 400, field: '/name' },
      { what: 'an empty name', raw: '{"name": ""}', status: 400, field: '/name' },
      { what: 'a name of spaces', raw: '{"name": "   "}', status: 400, field: '/name' },
      { what: 'a name of Unicode spaces', raw: '{"name": "\\u00a0\\u2003\\u3000"}', status: 400, field: '/name' },
      { what: 'a name of 256 characters', raw: JSON.stringify({ name: 'n'.repeat(256) }), status: 400, field: '/name' },
      { what: 'a NUL', raw: '{"name": "a\\u0000b"}', status: 400, field: '/name' },
      { what: 'a bell', raw: '{"name": "a\\u0007b"}', status: 400, field: '/name' },
      { what: 'a tab inside', raw: '{"name": "a\\tb"}', status: 400, field: '/name' },
      { what: 'a tab at the edge, which trimming would drop', raw: '{"name": "\\tpadded"}', status: 400, field: '/name' },
      { what: 'a newline inside', raw: '{"name": "a\\nb"}', status: 400, field: '/name' },
      { what: 'a terminal escape', raw: '{"name": "\\u001b[31mred"}', status: 400, field: '/name' },
      { what: 'a DEL', raw: '{"name": "a\\u007fb"}', status: 400, field: '/name' },
      { what: 'a C1 control (NEL, U+0085)', raw: '{"name": "a\\u0085b"}', status: 400, field: '/name' },
      { what: 'a C1 control (CSI, U+009B)', raw: '{"name": "\\u009b31mred"}', status: 400, field: '/name' },
      { what: 'an array body', raw: '[{"name": "fine"}]', status: 400, field: '/' },
      { what: 'a string body', raw: '"fine"', status: 400, field: '/' },
      { what: 'a null body', raw: 'null', status: 400, field: '/' },
      { what: 'malformed JSON', raw: '{"name": "fine"', status: 400 },
      { what: 'JSON with a __proto__ key', raw: '{"name": "fine", "__proto__": {"x": 1}}', status: 400 },
      { what: 'an empty body labelled JSON', raw: '', status: 400 },
      { what: 'no body at all', contentType: undefined, status: 400, field: '/' },
      { what: 'a text/plain body', raw: '{"name": "fine"}', contentType: 'text/plain', status: 415 },
      { what: 'a form body', raw: 'name=fine', contentType: 'application/x-www-form-urlencoded', status: 415 },
      // Valid JSON with a valid name, padded with whitespace past the limit: only the size is wrong.
      { what: 'a body of 1 MiB + 1 byte', raw: padded('{"name": "fine"', BODY_LIMIT + 1), status: 413 },
    ]
    const editor = world.fresh('editor')
    const editorToken = await world.person(editor, 'Editor')
    const target = await create(world, editorToken, 'untouched')

    for (const { what, raw, contentType, status, field } of cases) {
      const options: CallOptions = raw === undefined ? {} : { raw, contentType: contentType ?? json }
      const subject = world.fresh('invalid')
      const before = await snapshot(db)

      const post = await call('POST', `${world.base}/`, { ...options, token: await world.person(subject, 'Invalid') })
      if (field === undefined) assertProblem(t, post, status, `POST ${what}`)
      else assertInvalid(t, post, 'body', field, `POST ${what}`)
      const put = await call('PUT', `${world.base}/${String(target.id)}`, { ...options, token: editorToken })
      if (field === undefined) assertProblem(t, put, status, `PUT ${what}`)
      else assertInvalid(t, put, 'body', field, `PUT ${what}`)

      t.strictSame(await snapshot(db), before, `${what}: no row written or changed`)
      t.strictSame(await ownersOf(db, subject), [], `${what}: no owner row for the new caller`)
    }

    const exact = padded('{"name": "exactly 1 MiB"', BODY_LIMIT)
    const atLimit = await call('POST', `${world.base}/`, { token: editorToken, raw: exact, contentType: json })
    t.equal(atLimit.status, 201, 'a body of exactly 1 MiB is accepted')
    const charset = await call('POST', `${world.base}/`, { token: editorToken, raw: '{"name": "with charset"}', contentType: 'application/json; charset=utf-8' })
    t.equal(charset.status, 201, 'application/json with a charset is JSON')
  })

  t.test('concurrent writes: the unique constraint lets exactly one win', async (t) => {
    // A caller with no owner row yet: the owner upsert races too.
    const newcomer = world.fresh('racer')
    const token = await world.person(newcomer, 'Racer')
    const replies = await Promise.all(Array.from({ length: 20 }, async () => call('POST', `${world.base}/`, { token, json: { name: 'the one' } })))
    const statuses = replies.map((reply) => reply.status).sort()
    t.strictSame(statuses, [201, ...Array<number>(19).fill(409)], 'one 201, nineteen 409')
    for (const reply of replies.filter((r) => r.status === 409)) {
      t.match(reply.headers.get('content-type'), PROBLEM_JSON)
    }
    const owners = await ownersOf(db, newcomer)
    t.equal(owners.length, 1, 'one owner row')
    const rows = await db.query<ResourceRow>('SELECT id, owner_id, name FROM resources WHERE owner_id = ?', [owners[0]?.id ?? 0])
    t.strictSame(rows.map((row) => row.name), ['the one'], 'exactly one row')

    // The same name, spelled with and without padding.
    const padded = await Promise.all(Array.from({ length: 20 }, async (_, i) =>
      call('POST', `${world.base}/`, { token, json: { name: i % 2 === 0 ? 'padded race' : '  padded race  ' } })))
    t.strictSame(padded.map((reply) => reply.status).sort(), [201, ...Array<number>(19).fill(409)], 'trimmed names race as one')

    // Distinct names by another newcomer: every one wins, all under one owner row.
    const many = world.fresh('many')
    const manyToken = await world.person(many, 'Many')
    const distinct = await Promise.all(Array.from({ length: 20 }, async (_, i) =>
      call('POST', `${world.base}/`, { token: manyToken, json: { name: `distinct ${String(i)}` } })))
    t.strictSame(distinct.map((reply) => reply.status), Array<number>(20).fill(201), 'twenty distinct names: all 201')
    t.equal((await ownersOf(db, many)).length, 1, 'and one owner row')
    t.equal(new Set(distinct.map((reply) => (reply.body as Resource).owner.id)).size, 1, 'all with the same owner id')

    // Ten resources renamed to the same name at once.
    const ten = (distinct.slice(0, 10).map((reply) => reply.body as Resource))
    const renames = await Promise.all(ten.map(async (resource) =>
      call('PUT', `${world.base}/${String(resource.id)}`, { token: manyToken, json: { name: 'converged' } })))
    t.strictSame(renames.map((reply) => reply.status).sort(), [200, ...Array<number>(9).fill(409)], 'one rename wins, nine 409')
    const converged = await db.query<ResourceRow>('SELECT id, owner_id, name FROM resources WHERE name = ?', ['converged'])
    t.equal(converged.length, 1, 'exactly one row has the name')
  })

  t.test('writes are atomic: a failed write leaves no owner row or half-written change behind', async (t) => {
    const removeFaults = await injectFaults(db)
    t.teardown(removeFaults)

    // A new caller whose resource insert fails after the owner upsert.
    for (const [name, status] of [['explode-on-insert', 500], ['collide-on-insert', 409]] as const) {
      const subject = world.fresh('atomic-newcomer')
      const before = await snapshot(db)
      const reply = await call('POST', `${world.base}/`, { token: await world.person(subject, 'Atomic'), json: { name } })
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
      ['rename failing in the update', 'PUT', `${world.base}/${String(resource.id)}`, 'explode-on-update', 500],
      ['rename clashing', 'PUT', `${world.base}/${String(resource.id)}`, 'atomic-sibling', 409],
    ]
    for (const [what, method, url, name, status] of failures) {
      const before = await snapshot(db)
      const reply = await call(method, url, { json: { name }, token: renamedToken })
      assertProblem(t, reply, status, what)
      t.strictSame(await snapshot(db), before, `${what}: resource and owner name unchanged`)
    }
    t.strictSame(await ownersOf(db, subject), [{ id: resource.owner.id, subject, name: 'Before' }], 'the owner keeps its old name')
    t.equal((await resourceRow(db, sibling.id))?.name, 'atomic-sibling')

    // Refused writes by a caller who has no owner row yet.
    const victim = await create(world, await world.token(BOB), 'atomic-victim')
    const refusals: [string, string, string, number][] = [
      ['PUT on someone else\'s', 'PUT', `${world.base}/${String(victim.id)}`, 403],
      ['PUT on an unknown id', 'PUT', `${world.base}/${String(MAX_ID)}`, 404],
      ['DELETE on someone else\'s', 'DELETE', `${world.base}/${String(victim.id)}`, 403],
      ['DELETE on an unknown id', 'DELETE', `${world.base}/${String(MAX_ID)}`, 404],
    ]
    for (const [what, method, url, status] of refusals) {
      const stranger = world.fresh('atomic-stranger')
      const before = await snapshot(db)
      const reply = await call(method, url, { token: await world.person(stranger, 'Stranger'), ...(method === 'PUT' ? { json: { name: 'mine now' } } : {}) })
      assertProblem(t, reply, status, `a newcomer's ${what}`)
      t.strictSame(await ownersOf(db, stranger), [], `a newcomer's ${what}: no owner row made`)
      t.strictSame(await snapshot(db), before, `a newcomer's ${what}: nothing written`)
    }
    // A refused rename by an existing owner under a new display name.
    const before = await snapshot(db)
    const refused = await call('PUT', `${world.base}/${String(victim.id)}`, { token: renamedToken, json: { name: 'mine now' } })
    assertProblem(t, refused, 403, 'an owner\'s refused rename under a new display name')
    t.strictSame(await snapshot(db), before, 'a refused rename leaves the owner\'s name as it was')
  })

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

    const first = await call('GET', `${world.base}/`, { token: reader })
    t.equal(first.status, 200)
    t.match(first.headers.get('content-type'), PLAIN_JSON)
    const page = first.body as Page
    t.strictSame(page.resources, all.slice(0, 100), 'the first page: 100 by default, in id order, shaped as the database says')
    const hundredth = all[99]?.id ?? 0
    t.equal(page.next, `${world.base}/?after=${String(hundredth)}&limit=100`, 'next is absolute and carries after and limit')
    t.equal(first.headers.get('link'), `<${page.next ?? ''}>; rel="next"`, 'the Link header says the same')
    const bare = await call('GET', world.base, { token: reader })
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

    const lastFive = await call('GET', `${world.base}/?after=${String(all[all.length - 6]?.id ?? 0)}&limit=5`, { token: reader })
    t.strictSame((lastFive.body as Page).resources, all.slice(-5), 'exactly the rest')
    t.equal((lastFive.body as Page).next, null, 'a page that ends with the last row has no next')
    t.equal(lastFive.headers.get('link'), null, 'and no Link')
    const beyond = await call('GET', `${world.base}/?after=${String(all.at(-1)?.id ?? 0)}`, { token: reader })
    t.strictSame(beyond.body, { resources: [], next: null }, 'after the last id: an empty page')
    t.equal(beyond.headers.get('link'), null)
    const maxAfter = await call('GET', `${world.base}/?after=${String(MAX_ID)}&limit=1000`, { token: reader })
    t.strictSame(maxAfter.body, { resources: [], next: null }, 'after the largest id there is')

    for (const [query, field] of [
      ['limit=0', '/limit'], ['limit=1001', '/limit'], ['limit=-1', '/limit'], ['limit=1.5', '/limit'], ['limit=abc', '/limit'], ['limit=', '/limit'],
      ['after=-1', '/after'], ['after=abc', '/after'], ['after=1.5', '/after'], [`after=${String(MAX_ID + 1)}`, '/after'],
    ] as const) {
      assertInvalid(t, await call('GET', `${world.base}/?${query}`, { token: reader }), 'query', field, `?${query}`)
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
    const pageOne = (await call('GET', `${world.base}/?limit=100`, { token: reader })).body as Page
    const cursor = pageOne.resources.at(-1)
    const ahead = remaining.slice(100, 103)
    const pagerOwned = [cursor, ...ahead].filter((resource) => resource?.owner.id === anchor.owner.id)
    t.equal(pagerOwned.length, 4, 'the cursor row and the next three are the pager\'s to delete')
    for (const resource of pagerOwned) {
      const deleted = await call('DELETE', `${world.base}/${String(resource?.id)}`, { token: pagerToken })
      t.equal(deleted.status, 204, `deleted ${String(resource?.id)} mid-walk`)
    }
    const rest = await walk(t, world, reader, pageOne.next ?? '', 100)
    t.strictSame(ids(rest), ids(remaining.slice(103)), 'the walk goes on after a deleted cursor, without the rows deleted ahead of it')
    t.equal(new Set([...ids(pageOne.resources), ...ids(rest)]).size, pageOne.resources.length + rest.length, 'no duplicates across the deletion')
  })
}

for (const dialect of ['sqlite', 'postgres'] as const satisfies readonly Dialect[]) {
  t.test(`resource v1 on ${dialect}`, async (t) => {
    const db = await freshDatabase(t, dialect)
    if (db === undefined) return
    behaviour(t, await setUp(t, db))
  })
}
