import t from 'tap'
import { parseCommandLine } from '#src/cli/command-line.js'
import { parseTrustProxy, type TrustProxy } from '#src/lib/trust-proxy.js'
import { startTestProvider } from './fixtures/oidc-provider.js'
import { build } from './helpers/app.js'
import { settingsFromSecrets, WRITE_SCOPE } from './helpers/auth.js'
import { send } from './helpers/http.js'

// --trust-proxy: which X-Forwarded-* headers the server believes, seen in request.ip and in the
// absolute URLs it builds (the Location of a created resource, the `next` link of a list). The requests come from
// 127.0.0.1, as inject's do; nginx.test.ts has a real proxy in front of real sockets.

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
    { name: 'the proxy\'s CIDR', trustProxy: ['127.0.0.0/8'], trusted: true },
    { name: 'another network\'s CIDR', trustProxy: ['10.0.0.0/8'], trusted: false },
  ]
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const app = await build(t, {
        swaggerUi: false,
        auth,
        trustProxy: c.trustProxy,
        routes: (app) => app.get('/whoami', async ({ ip, protocol, host }) => ({ ip, protocol, host })),
      })

      const seen = await send(app, '/whoami', { headers: FORWARDED })
      const created = await send<{ id: number }>(app, '/api/resource/v1/', {
        method: 'POST',
        headers: FORWARDED,
        token,
        json: { name: 'behind a proxy' },
      })
      t.equal(created.status, 201, created.text)
      const id = String(created.body?.id)
      if (c.trusted) {
        t.same(seen.body, { ip: '203.0.113.7', protocol: 'https', host: 'api.example.com' })
        t.equal(created.headers.location, `https://api.example.com/api/resource/v1/${id}`)
      } else {
        t.same(seen.body, { ip: '127.0.0.1', protocol: 'http', host: 'localhost:80' })
        t.equal(created.headers.location, `http://localhost/api/resource/v1/${id}`)
      }
    })
  }
})

t.test('parseTrustProxy takes what Fastify takes and refuses the rest', async (t) => {
  t.equal(parseTrustProxy('false'), false)
  t.equal(parseTrustProxy('TRUE'), true)
  t.equal(parseTrustProxy(true), true)
  t.equal(parseTrustProxy('0'), false)
  t.same(parseTrustProxy('127.0.0.1, 10.0.0.0/8,::1,fd00::/8'), ['127.0.0.1', '10.0.0.0/8', '::1', 'fd00::/8'])
  t.same(parseTrustProxy('loopback,uniquelocal'), ['loopback', 'uniquelocal'])
  for (const bad of ['', 'yes', '10.0.0.0/33', '300.1.1.1', 'nginx', '-1', '1.2.3.4/8/9']) {
    t.throws(() => parseTrustProxy(bad), /^invalid --trust-proxy /, `refuses ${JSON.stringify(bad)}`)
  }
})

t.test('a hop count is refused: it would let a client that connects directly forge its address', async (t) => {
  for (const hops of ['1', '2', 1]) {
    t.throws(() => parseTrustProxy(hops), /^invalid --trust-proxy \("?\d"?\): a hop count cannot tell a proxy from a client/,
      `refuses ${JSON.stringify(hops)}`)
  }
  await t.rejects(parseCommandLine(['--instance-path', t.testdir(), '--trust-proxy', '1'], {}),
    { message: /a hop count cannot tell a proxy/, exitCode: 2 }, 'the CLI stops at start')
})

t.test('a bad --trust-proxy or MRMAT_TRUST_PROXY is a usage error (exit code 2)', async (t) => {
  const instance = ['--port', '0', '--instance-path', t.testdir()]
  const expected = (where: string): RegExp =>
    new RegExp(`^invalid ${where} \\("nginx"\\): expected true, false or a comma-separated list`)
  await t.rejects(parseCommandLine(instance, { MRMAT_TRUST_PROXY: 'nginx' }),
    { message: expected('MRMAT_TRUST_PROXY'), exitCode: 2 }, 'MRMAT_TRUST_PROXY')
  await t.rejects(parseCommandLine([...instance, '--trust-proxy', 'nginx'], {}),
    { message: expected('--trust-proxy'), exitCode: 2 }, '--trust-proxy')
})
