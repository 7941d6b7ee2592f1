import Fastify from 'fastify'
import Sqlite from 'better-sqlite3'
import { Registry } from 'prom-client'
import t from 'tap'
import { buildApp } from '#src/app.js'
import metrics from '#src/plugins/metrics.js'
import { openSqlite } from '#src/plugins/database/sqlite.js'
import problemDetails from '#src/plugins/problem-details.js'
import { freshDatabase, freshSqlite } from './fixtures/databases.js'
import { startTestProvider } from './fixtures/oidc-provider.js'
import { build } from './helpers/app.js'
import { settingsFromSecrets } from './helpers/auth.js'
import { send } from './helpers/http.js'
import { scrape, valueOf } from './helpers/metrics.js'
import { pollUntil } from './helpers/wait.js'

// The metrics plugin in the real app: what a scrape of /metrics holds after real requests, real tokens from a real
// OpenID provider, real databases and a real overload.

const COUNT = 'http_request_duration_seconds_count'

t.test('metrics are off by default: /metrics is a 404 problem like any unknown path', async (t) => {
  const app = await build(t, { database: 'none' })
  const answer = await scrape(app)
  t.equal(answer.status, 404)
  t.match(answer.contentType, /^application\/problem\+json/)
  t.match(JSON.parse(answer.text), { status: 404, instance: '/metrics' })
})

t.test('requests are counted by method, route template and status class; unknown URLs share one label', async (t) => {
  const app = await build(t, { metrics: true })
  for (let i = 0; i < 3; i++) t.equal((await send(app, '/api/greeting/v1/')).status, 200)
  for (const name of ['Ann', 'Bob']) t.equal((await send(app, `/api/greeting/v2/?name=${name}`)).status, 200)
  t.equal((await send(app, `/api/greeting/v2/?name=${'a'.repeat(256)}`)).status, 400)
  t.equal((await send(app, '/api/greeting/v1/', { method: 'HEAD' })).status, 200)
  for (const id of [17, 18]) t.equal((await send(app, `/api/resource/v1/${id}`)).status, 401)
  for (const path of ['/no/such/path-1', '/no/such/path-2', '/wp-admin.php']) {
    t.equal((await app.inject({ method: 'GET', url: path })).statusCode, 404)
  }
  t.equal((await app.inject({ method: 'DELETE', url: '/api/greeting/v1/' })).statusCode, 405)

  const { status, contentType, text } = await scrape(app)
  t.equal(status, 200)
  t.match(contentType, /^text\/plain; version=0\.0\.4/)
  const count = (labels: Record<string, string>) => valueOf(text, COUNT, labels)
  t.equal(count({ method: 'GET', route: '/api/greeting/v1', status_class: '2xx' }), 3)
  t.equal(count({ method: 'HEAD', route: '/api/greeting/v1', status_class: '2xx' }), 1, 'HEAD apart from GET')
  t.equal(count({ method: 'GET', route: '/api/greeting/v2', status_class: '2xx' }), 2)
  t.equal(count({ method: 'GET', route: '/api/greeting/v2', status_class: '4xx' }), 1)
  t.equal(count({ method: 'GET', route: '/api/resource/v1/:id', status_class: '4xx' }), 2, 'the template, not the id')
  t.equal(count({ method: 'GET', route: 'unmatched', status_class: '4xx' }), 3)
  t.equal(count({ method: 'DELETE', route: 'unmatched', status_class: '4xx' }), 1, 'a 405 matched no route either')
  t.notOk(/path-1|wp-admin|resource\/v1\/17/.test(text), 'no raw URL is a label')
  t.ok((valueOf(text, 'http_request_duration_seconds_sum', { route: '/api/greeting/v1' }) ?? 0) > 0, 'durations')
  t.equal(valueOf(text, 'http_request_duration_seconds_bucket', { route: '/api/greeting/v1', method: 'GET',
    le: '+Inf' }), 3, 'the histogram\'s last bucket holds every request')
  t.ok(valueOf(text, 'process_cpu_user_seconds_total') !== undefined, 'process metrics')
  t.ok(valueOf(text, 'nodejs_eventloop_lag_seconds') !== undefined, 'event-loop metrics')
  t.notOk('/metrics' in (app.swagger() as { paths: Record<string, unknown> }).paths, 'not in the OpenAPI document')

  const again = await scrape(app)
  t.equal(valueOf(again.text, COUNT, { route: '/metrics', status_class: '2xx' }), 1, 'the scrape itself is counted')
})

t.test('token checks: each outcome and reason, cache hits, key-set fetches and introspections', async (t) => {
  const provider = await startTestProvider(t)
  const app = await build(t, { database: 'none', metrics: true, auth: await settingsFromSecrets(t, provider) })
  const v3 = '/api/greeting/v3/'
  const jwt = await provider.jwt()
  t.equal((await send(app, v3)).status, 401, 'no token')
  t.equal((await send(app, v3, { token: '!!!' })).status, 401, 'malformed')
  t.equal((await send(app, v3, { token: await provider.sign({ exp: Math.floor(Date.now() / 1000) - 3600 }) })).status,
    401, 'expired')
  t.equal((await send(app, v3, { token: jwt })).status, 200, 'verified')
  t.equal((await send(app, v3, { token: jwt })).status, 200, 'from the cache')
  t.equal((await send(app, v3, { token: await provider.opaque() })).status, 200, 'introspected')
  t.equal((await send(app, v3, { token: 'not-a-token-the-provider-issued' })).status, 401, 'inactive')

  const { text } = await scrape(app)
  const checks = (outcome: string, reason: string) => valueOf(text, 'mrmat_auth_token_checks_total',
    { outcome, reason })
  t.equal(checks('refused', 'missing'), 1)
  t.equal(checks('refused', 'malformed'), 1)
  t.equal(checks('refused', 'expired'), 1)
  t.equal(checks('refused', 'inactive'), 1)
  t.equal(checks('accepted', 'jwt'), 1)
  t.equal(checks('accepted', 'cached'), 1)
  t.equal(checks('accepted', 'introspection'), 1)
  t.equal(valueOf(text, 'mrmat_auth_token_cache_lookups_total', { result: 'hit' }), 1)
  t.equal(valueOf(text, 'mrmat_auth_token_cache_lookups_total', { result: 'miss' }), 5)
  t.equal(valueOf(text, 'mrmat_auth_jwks_fetches_total', { outcome: 'ok' }), provider.requests('/jwks'),
    'one count a fetch the provider saw')
  t.ok(provider.requests('/jwks') >= 1)
  t.equal(valueOf(text, 'mrmat_auth_introspections_total', { outcome: 'active' }), 1)
  t.equal(valueOf(text, 'mrmat_auth_introspections_total', { outcome: 'inactive' }), 1)
})

t.test('SQLite: a failed write, and a write waiting for the lock another process holds until the busy timeout',
  async (t) => {
    const provider = await startTestProvider(t)
    const fixture = freshSqlite(t)
    const database = openSqlite(fixture.file, { busyTimeout: 300 })
    const app = await buildApp({ database, migrate: true, metrics: true, auth: await settingsFromSecrets(t, provider) })
    t.teardown(() => app.close())
    await app.ready()
    await app.identityProvider?.start()
    const token = await provider.jwt()
    const create = async () => send(app, '/api/resource/v1/', { method: 'POST', token, json: { name: 'twice' } })
    t.equal((await create()).status, 201)
    t.equal((await create()).status, 409, 'the unique constraint refuses the second')

    const other = new Sqlite(fixture.file)
    t.teardown(() => { other.close() })
    other.exec('BEGIN IMMEDIATE')
    const locked = await create()
    t.equal(locked.status, 503, 'the busy timeout ran out')
    other.exec('ROLLBACK')

    const { text } = await scrape(app)
    t.equal(valueOf(text, 'mrmat_db_query_errors_total', { dialect: 'sqlite' }), 2, 'the 409\'s and the 503\'s')
    t.equal(valueOf(text, 'mrmat_db_sqlite_busy_timeouts_total', { dialect: 'sqlite' }), 1)
    t.ok((valueOf(text, 'mrmat_db_sqlite_busy_wait_seconds_total', { dialect: 'sqlite' }) ?? 0) >= 0.25,
      'the wait for the lock is counted')
    t.equal(valueOf(text, 'mrmat_db_pool_connections'), undefined, 'SQLite has no pool')
  })

const POOLED = ['postgres', 'mysql'] as const
for (const dialect of POOLED) t.test(`${dialect}: the pool's connections and a failed statement`, async (t) => {
  const pg = await freshDatabase(t, dialect)
  if (pg === undefined) return
  const provider = await startTestProvider(t)
  const app = await build(t, { database: pg, poolSize: 3, metrics: true, auth: await settingsFromSecrets(t, provider) })
  const token = await provider.jwt()
  const create = async () => send(app, '/api/resource/v1/', { method: 'POST', token, json: { name: 'twice' } })
  const created = await create()
  t.equal(created.status, 201)
  t.equal((await create()).status, 409)
  // pg drops a connection a statement failed on: a read opens one again.
  t.equal((await send(app, String(created.headers.location), { token })).status, 200)
  const { text } = await scrape(app)
  t.equal(valueOf(text, 'mrmat_db_query_errors_total', { dialect }), 1, 'the unique violation')
  const open = valueOf(text, 'mrmat_db_pool_connections', { dialect, state: 'open' }) ?? 0
  t.ok(open >= 1 && open <= 3, `between 1 and the pool size open (${open})`)
  t.equal(valueOf(text, 'mrmat_db_pool_waiting_clients', { dialect }), 0)
  const scraped = await scrape(app)
  t.equal(valueOf(scraped.text, 'mrmat_db_query_errors_total', { dialect }), 1, 'a counter, not a sum')
})

t.test('load shedding: each 503 counted by its reason', async (t) => {
  const app = await build(t, {
    database: 'none', swaggerUi: false, metrics: true, maxEventLoopDelay: 100, maxHeapUsed: 0, maxRss: 0,
    loadTuning: { sampleInterval: 200, retryAfter: 3 },
    routes: (app) => app.get('/block', async () => {
      const until = Date.now() + 800
      while (Date.now() < until) { /* the point is to hold the event loop */ }
      return { blocked: true }
    }),
  })
  await pollUntil(async () => (await send(app, '/api/greeting/v1')).status === 200, 3000, 'serving before')
  t.equal((await app.inject({ method: 'GET', url: '/block' })).statusCode, 200)
  await pollUntil(async () => (await send(app, '/api/greeting/v1')).status === 503, 3000, 'a 503 under pressure', 10)
  const { text } = await scrape(app)
  const shed = valueOf(text, 'mrmat_load_shed_total', { reason: 'event_loop_delay' }) ?? 0
  t.ok(shed >= 1, `counted (${shed})`)
  t.equal(valueOf(text, COUNT, { route: '/api/greeting/v1', status_class: '5xx' }), shed, 'every 503 of the route')
})

t.test('a host app: the plugin on its own registry and path', async (t) => {
  const registry = new Registry()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(problemDetails)
  await app.register(metrics, { registry, path: '/internal/metrics', processMetrics: false })
  app.get('/items/:id', async () => ({ ok: true }))
  t.equal((await app.inject({ url: '/items/5' })).statusCode, 200)
  t.equal(valueOf(await registry.metrics(), COUNT, { route: '/items/:id', status_class: '2xx' }), 1)
  t.equal(valueOf(await registry.metrics(), 'process_cpu_user_seconds_total'), undefined, 'no process metrics')
  const served = await scrape(app, '/internal/metrics')
  t.equal(served.status, 200)
  t.equal(valueOf(served.text, COUNT, { route: '/items/:id' }), 1)
  t.equal((await app.inject({ url: '/metrics' })).statusCode, 404)
})
