import t from 'tap'
import { buildApp } from '#src/app.js'
import { parseTrustProxy, type TrustProxy } from '#src/lib/trust-proxy.js'
import { openSqlite } from '#src/plugins/database/sqlite.js'
import { settingsFromSecrets, WRITE_SCOPE } from './helpers/auth.js'
import { runCli } from './helpers/cli.js'
import { httpRequest } from './helpers/http.js'
import { startTestProvider } from './helpers/oidc-provider.js'

// --trust-proxy: which X-Forwarded-* headers the server believes, seen in request.ip and in the
// absolute URLs it builds (the Location of a created resource, the `next` link of a list).

const FORWARDED = {
  'x-forwarded-for': '203.0.113.7',
  'x-forwarded-proto': 'https',
  'x-forwarded-host': 'api.example.com',
}

t.test('X-Forwarded-* are used only from trusted proxies', async (t) => {
  const provider = await startTestProvider(t)
  const auth = await settingsFromSecrets(t, provider)
  const token = await provider.jwt({ scope: WRITE_SCOPE })
  const cases: { name: string, trustProxy: TrustProxy, trusted: boolean }[] = [
    { name: 'off (the default)', trustProxy: false, trusted: false },
    { name: 'a hop count of 1', trustProxy: 1, trusted: true },
    { name: 'the proxy\'s CIDR', trustProxy: ['127.0.0.0/8'], trusted: true },
    { name: 'another network\'s CIDR', trustProxy: ['10.0.0.0/8'], trusted: false },
  ]
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const app = await buildApp({ swaggerUi: false, database: openSqlite(':memory:'), migrate: true, auth, trustProxy: c.trustProxy })
      app.get('/whoami', async (request) => ({ ip: request.ip, protocol: request.protocol, host: request.host }))
      t.teardown(() => app.close())
      const url = await app.listen({ host: '127.0.0.1', port: 0 })
      const { host } = new URL(url)

      const seen = await httpRequest(`${url}/whoami`, { headers: FORWARDED })
      const created = await httpRequest(`${url}/api/resource/v1/`, {
        method: 'POST',
        headers: { ...FORWARDED, authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'behind a proxy' }),
      })
      t.equal(created.status, 201, created.text)
      const id = String(created.body?.id)
      if (c.trusted) {
        t.same(seen.body, { ip: '203.0.113.7', protocol: 'https', host: 'api.example.com' })
        t.equal(created.headers.location, `https://api.example.com/api/resource/v1/${id}`)
      } else {
        t.same(seen.body, { ip: '127.0.0.1', protocol: 'http', host })
        t.equal(created.headers.location, `${url}/api/resource/v1/${id}`)
      }
    })
  }
})

t.test('parseTrustProxy takes what Fastify takes and refuses the rest', async (t) => {
  t.equal(parseTrustProxy('false'), false)
  t.equal(parseTrustProxy('TRUE'), true)
  t.equal(parseTrustProxy(true), true)
  t.equal(parseTrustProxy('2'), 2)
  t.equal(parseTrustProxy(1), 1)
  t.equal(parseTrustProxy('0'), false)
  t.same(parseTrustProxy('127.0.0.1, 10.0.0.0/8,::1,fd00::/8'), ['127.0.0.1', '10.0.0.0/8', '::1', 'fd00::/8'])
  t.same(parseTrustProxy('loopback,uniquelocal'), ['loopback', 'uniquelocal'])
  for (const bad of ['', 'yes', '10.0.0.0/33', '300.1.1.1', 'nginx', '-1', '1.2.3.4/8/9']) {
    t.throws(() => parseTrustProxy(bad), /^invalid --trust-proxy /, `refuses ${JSON.stringify(bad)}`)
  }
})

t.test('a bad --trust-proxy or MRMAT_TRUST_PROXY is a one-line usage error, exit 2', async (t) => {
  const cwd = t.testdir()
  const result = await runCli(t, ['--port', '0'], { cwd, env: { MRMAT_TRUST_PROXY: 'nginx' } })
  t.equal(result.code, 2)
  t.match(result.stderr, /^mrmat-ts-api-fastify: invalid MRMAT_TRUST_PROXY \("nginx"\): expected true, false, a hop count or a comma-separated list/)
})
