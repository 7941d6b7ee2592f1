import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import type { Problem as ProblemBody } from '#src/lib/problem.js'
import { resolveAuthSettings } from '#src/plugins/auth/settings.js'
import { freshDatabase, type Dialect, type TestDatabase } from '../fixtures/databases.js'
import { startTestProvider, type TestClientOptions, type TestProvider } from '../fixtures/oidc-provider.js'
import { build } from './app.js'
import { Problems, READ_SCOPE, WRITE_SCOPE } from './auth.js'
import { send, type Answer, type SendOptions } from './http.js'

// Resource v1 with real tokens, on a SQLite file, a fresh PostgreSQL and a fresh MySQL database: what every
// resource-*.test.ts needs. Every write is checked in the database itself, through a connection of the test's own.

export const PREFIX = '/api/resource/v1'
/** The origin of requests through inject, whose Host header is localhost:80. */
export const ORIGIN = 'http://localhost'
export const PROBLEM_JSON = /^application\/problem\+json/
export const PLAIN_JSON = /^application\/json/
export const MAX_ID = 2147483647

/** Clients with client-credentials tokens: `sub` is the client id, `preferred_username` the display name. */
export const ALICE: TestClientOptions = { id: 'alice', secret: 'alice-secret', preferredUsername: 'Alice' }
export const BOB: TestClientOptions = { id: 'bob', secret: 'bob-secret', preferredUsername: 'Bob' }
/** No preferred_username: the owner's name falls back to the client id. */
export const NAMELESS: TestClientOptions = { id: 'nameless', secret: 'nameless-secret' }

export type Access = 'read' | 'write' | 'both'
const SCOPES: Record<Access, string> = { read: READ_SCOPE, write: WRITE_SCOPE, both: `${READ_SCOPE} ${WRITE_SCOPE}` }

export interface Owner {
  id: number
  subject: string
  name: string
}

export interface Resource {
  id: number
  name: string
  owner: Owner
}

export interface Page {
  resources: Resource[]
  next: string | null
}

export type OwnerRow = Owner

export interface ResourceRow {
  id: number
  owner_id: number
  name: string
}

export interface Snapshot {
  owners: OwnerRow[]
  resources: ResourceRow[]
}

/** An RFC 9457 problem of the status, with the request id of its header; `expected` is matched over it. */
export function assertProblem(t: Test, reply: Answer, status: number, what: string,
  expected: Record<string, unknown> = {}): void {
  t.equal(reply.status, status, `${what}: ${String(status)}`)
  t.match(reply.headers['content-type'], PROBLEM_JSON, `${what}: application/problem+json`)
  t.match(reply.body, {
    type: String,
    title: String,
    status,
    detail: String,
    instance: String,
    requestId: reply.headers['x-request-id'] ?? 'no x-request-id header',
    ...expected,
  }, `${what}: problem body`)
}

/** A validation problem naming the offending field. */
export function assertInvalid(t: Test, reply: Answer, where: 'body' | 'query' | 'path', field: string,
  what: string): void {
  assertProblem(t, reply, 400, what, { type: Problems.validation, title: 'Validation failed' })
  const errors = (reply.body as ProblemBody | undefined)?.errors ?? []
  const named = errors.some((error) => error.in === where && error.name === field)
  t.ok(named, `${what}: errors name ${where} ${field}`, { errors })
}

/** A resource with exactly the documented fields. */
export function assertResource(t: Test, reply: Answer, status: number, expected: Resource, what: string): void {
  t.equal(reply.status, status, `${what}: ${String(status)}`)
  t.match(reply.headers['content-type'], PLAIN_JSON, `${what}: application/json`)
  t.strictSame(reply.body, expected, `${what}: exactly id, name, owner {id, subject, name}`)
}

export async function snapshot(db: TestDatabase): Promise<Snapshot> {
  return {
    owners: await db.query<OwnerRow>('SELECT id, subject, name FROM owners ORDER BY id'),
    resources: await db.query<ResourceRow>('SELECT id, owner_id, name FROM resources ORDER BY id'),
  }
}

export async function ownersOf(db: TestDatabase, subject: string): Promise<OwnerRow[]> {
  return db.query<OwnerRow>('SELECT id, subject, name FROM owners WHERE subject = ?', [subject])
}

export async function resourceRow(db: TestDatabase, id: number): Promise<ResourceRow | undefined> {
  return (await db.query<ResourceRow>('SELECT id, owner_id, name FROM resources WHERE id = ?', [id]))[0]
}

/** What every behaviour test gets: the database, the provider, the app and tokens. */
export interface World {
  db: TestDatabase
  provider: TestProvider
  app: FastifyInstance
  /** http://localhost/api/resource/v1, no trailing slash: where Location and `next` point. */
  base: string
  /** `base`/id: where a resource is. */
  url(id: number | string): string
  /** A request to the app; `path` may be a URL of `base`. */
  call(method: string, path: string, options?: SendOptions): Promise<Answer>
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
  const app = await build(t, { database: db, auth, swaggerUi: false })
  const tokens = new Map<string, Promise<string>>()
  let counter = 0
  return {
    db,
    provider,
    app,
    base: `${ORIGIN}${PREFIX}`,
    url: (id) => `${ORIGIN}${PREFIX}/${String(id)}`,
    async call(method, path, options = {}) {
      return send(app, path, { ...options, method })
    },
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

/** The tests of `behaviour`, once on each dialect, each with a world of its own. */
export function onEachDialect(t: Test, behaviour: (t: Test, world: World) => void): void {
  for (const dialect of ['sqlite', 'postgres', 'mysql'] as const satisfies readonly Dialect[]) {
    t.test(`resource v1 on ${dialect}`, async (t) => {
      const db = await freshDatabase(t, dialect)
      if (db === undefined) return
      behaviour(t, await setUp(t, db))
    })
  }
}

/** A setup step: creates a resource and returns it, or throws. */
export async function create(world: World, token: string, name: string): Promise<Resource> {
  const reply = await world.call('POST', `${PREFIX}/`, { token, json: { name } })
  if (reply.status !== 201) throw new Error(`creating ${name}: ${String(reply.status)} ${reply.text}`)
  return reply.body as Resource
}
