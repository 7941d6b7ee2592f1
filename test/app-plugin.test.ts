import { join } from 'node:path'
import Fastify from 'fastify'
import t from 'tap'
import api from '#src/app.js'
import { resolveAuthSettings } from '#src/plugins/auth/settings.js'
import { openSqlite } from '#src/plugins/database/sqlite.js'
import { startTestProvider } from './fixtures/oidc-provider.js'

// The whole API as one plugin in a host app of its own, under a prefix: every API answers below it, the host's own
// routes and error handling stay the host's.

t.test('a host app mounts the whole API in one line under its own prefix', async (t) => {
  const provider = await startTestProvider(t)
  const host = Fastify()
  host.get('/', async () => ({ host: 'mine' }))
  host.get('/boom', async () => {
    throw new Error('the host\'s own failure')
  })
  await host.register(api, {
    prefix: '/mrmat',
    database: openSqlite(join(t.testdir(), 'api.sqlite')),
    migrate: true,
    swaggerUi: false,
    auth: resolveAuthSettings({ issuer: provider.issuer, audience: provider.audience }),
  })
  t.teardown(() => host.close())
  await host.ready()
  await host.identityProvider?.start()

  const greeting = await host.inject('/mrmat/api/greeting/v1/')
  t.same([greeting.statusCode, greeting.json()], [200, { message: 'Hello World' }], 'greeting v1 below the prefix')
  t.match(greeting.headers['x-request-id'], /^req-\d+$/, 'the API echoes the request id the host made')

  const token = await provider.jwt()
  const authorization = `Bearer ${token}`
  const v3 = await host.inject({ url: '/mrmat/api/greeting/v3/', headers: { authorization } })
  t.same([v3.statusCode, v3.json()], [200, { message: 'Hello test-client-display' }], 'greeting v3 with a real token')

  const created = await host.inject({
    method: 'POST',
    url: '/mrmat/api/resource/v1/',
    headers: { authorization },
    payload: { name: 'hosted' },
  })
  t.equal(created.statusCode, 201, 'resource v1 creates')
  const { id } = created.json<{ id: number }>()
  t.equal(created.headers.location, `http://localhost/mrmat/api/resource/v1/${id}`, 'Location carries the prefix')

  const ready = await host.inject('/mrmat/healthz/readiness')
  t.same(ready.json(), { status: 'OK', checks: [{ name: 'database', status: 'OK' }] }, 'readiness below the prefix')

  const openapi = await host.inject('/mrmat/openapi.json')
  const document = openapi.json<{ paths: Record<string, unknown>, tags: unknown[] }>()
  t.ok('/mrmat/api/resource/v1/{id}' in document.paths, 'the OpenAPI document has the prefixed paths')
  t.equal(document.tags.length, 5, 'and the tags the API plugins brought')

  const missing = await host.inject('/mrmat/nope')
  t.equal(missing.statusCode, 404)
  t.match(missing.headers['content-type'], /^application\/problem\+json/, 'below the prefix a 404 is a problem')
  const refused = await host.inject({ method: 'DELETE', url: '/mrmat/api/greeting/v1/' })
  t.same([refused.statusCode, refused.headers.allow], [405, 'GET, HEAD'], 'and a wrong method a 405')

  const own = await host.inject('/')
  t.same([own.statusCode, own.json()], [200, { host: 'mine' }], 'the host\'s own route is untouched')
  const ownMissing = await host.inject('/nope')
  t.same([ownMissing.statusCode, ownMissing.headers['content-type']], [404, 'application/json; charset=utf-8'],
    'the host\'s own 404 stays Fastify\'s')
  const ownFailure = await host.inject('/boom')
  t.match(ownFailure.json(), { statusCode: 500, message: 'the host\'s own failure' }, 'as do its errors')
  t.notOk('x-request-id' in ownFailure.headers, 'and the API\'s hooks do not run on the host\'s routes')
})

t.test('Swagger UI below a host app\'s prefix, loaded on its first request', async (t) => {
  const host = Fastify()
  await host.register(api, { prefix: '/mrmat' })
  t.teardown(() => host.close())
  await host.ready()
  const page = await host.inject('/mrmat/docs/')
  t.equal(page.statusCode, 200, '/mrmat/docs/ is the page')
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.headers['content-security-policy'], /script-src 'self'/, 'with Swagger UI\'s own CSP')
  t.equal((await host.inject('/mrmat/docs')).statusCode, 200, 'and so is /mrmat/docs')
  const [document, ui] = await Promise.all([host.inject('/mrmat/openapi.json'), host.inject('/mrmat/docs/json')])
  t.same(ui.json(), document.json(), 'its document is the API\'s, with the prefixed paths')
  const asset = await host.inject('/mrmat/docs/static/swagger-ui.css')
  t.same([asset.statusCode, asset.headers['content-type']], [200, 'text/css; charset=utf-8'], 'its assets')
  const again = await host.inject({ url: '/mrmat/docs/static/swagger-ui.css',
    headers: { 'if-none-match': String(asset.headers.etag) } })
  t.equal(again.statusCode, 304, 'with their ETag')
  const missing = await host.inject('/mrmat/docs/static/none.js')
  t.same([missing.statusCode, missing.headers['content-type']], [404, 'application/problem+json; charset=utf-8'],
    'an asset it does not have is the API\'s 404')
  const refused = await host.inject('/mrmat/docs/static/index.html%00')
  t.same([refused.statusCode, refused.headers['content-type']], [403, 'application/problem+json; charset=utf-8'],
    'a path its file server refuses is refused as the API\'s problem')
  t.equal((await host.inject('/docs/')).statusCode, 404, 'nothing outside the prefix')
})
