import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import greetingV3 from '#plugins/greeting/v3/index.js'
import bearerAuth from '#src/plugins/auth/plugin.js'
import { readClientSecrets, resolveAuthSettings, type AuthSettings } from '#src/plugins/auth/settings.js'
import problemDetails from '#src/plugins/problem-details.js'
import { startTestProvider } from './fixtures/oidc-provider.js'
import { challengeOf, Problems, personOpaqueToken } from './helpers/auth.js'
import { send } from './helpers/http.js'
import { freePorts } from './helpers/process.js'
import { pollUntil } from './helpers/wait.js'

const HOST_AUDIENCE = 'host-api'
const MAIN_AUDIENCE = 'mrmat-ts-api-fastify'

/** Someone else's Fastify app, set up as the README's library section says, its provider discovered; closed after. */
async function hostApp(t: Test, settings: AuthSettings | undefined): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(problemDetails)
  await app.register(bearerAuth, { settings })
  await app.register(greetingV3, { prefix: '/hello' })
  app.get('/status', async () => ({ up: true }))
  await app.ready()
  await app.identityProvider?.start()
  return app
}

t.test('greeting v3 in a host app with its own issuer and audience', async (t) => {
  const host = await startTestProvider(t, { audience: HOST_AUDIENCE })
  const main = await startTestProvider(t)
  const settings = resolveAuthSettings({
    secrets: readClientSecrets(await host.writeClientSecrets(t.testdir())),
    audience: HOST_AUDIENCE,
  })
  t.match(settings, { issuer: host.issuer, audience: HOST_AUDIENCE, clientId: host.apiClient.id })
  const app = await hostApp(t, settings)

  for (const path of ['/hello/', '/hello']) {
    const answer = await send(app, path, { token: await host.jwt() })
    t.equal(answer.status, 200, `${path}: the host's token`)
    t.same(answer.body, { message: 'Hello test-client-display' })
  }
  t.same((await send(app, '/hello/', { token: await personOpaqueToken(host, 'bob') })).body, { message: 'Hello bob' },
    'opaque tokens are introspected with the host\'s own client')

  const refusals: [string, string][] = [
    ['the host provider\'s token for the main API\'s audience', await host.jwt({ audience: MAIN_AUDIENCE })],
    ['the main API\'s provider and audience', await main.jwt()],
    ['the main API\'s provider claiming the host audience', await main.jwt({ audience: HOST_AUDIENCE })],
  ]
  for (const [what, token] of refusals) {
    const answer = await send(app, '/hello/', { token })
    t.equal(answer.status, 401, what)
    t.equal(challengeOf(answer)?.params.realm, HOST_AUDIENCE, `${what}: the host's realm`)
    t.equal(challengeOf(answer)?.params.error, 'invalid_token', `${what}: invalid_token`)
    t.match(answer.body, { type: Problems.invalidToken, instance: '/hello/' },
      `${what}: a problem from the host's problemDetails`)
  }

  const none = await send(app, '/hello/')
  t.equal(none.status, 401)
  t.equal(none.headers['www-authenticate'], `Bearer realm="${HOST_AUDIENCE}"`)
  t.match(none.headers['content-type'], /^application\/problem\+json/)
  t.equal((await send(app, '/status')).status, 200, 'the host\'s own open route is left alone')
})

t.test('greeting v3 without the auth plugin fails at startup', async (t) => {
  const alone = Fastify()
  t.teardown(() => alone.close())
  await t.rejects(async () => {
    await alone.register(problemDetails)
    await alone.register(greetingV3, { prefix: '/hello' })
    await alone.ready()
  }, { code: 'FST_ERR_PLUGIN_DEPENDENCY_NOT_REGISTERED', message: /mrmat-auth/ }, 'no auth plugin: the error names mrmat-auth')

  const late = Fastify()
  t.teardown(() => late.close())
  await t.rejects(async () => {
    await late.register(problemDetails)
    await late.register(greetingV3, { prefix: '/hello' })
    await late.register(bearerAuth, { settings: undefined })
    await late.ready()
  }, { message: /mrmat-auth/ }, 'the auth plugin registered after greeting v3 is too late')
})

t.test('a host app without an identity provider: greeting v3 is 401 not configured', async (t) => {
  const app = await hostApp(t, undefined)
  const answer = await send(app, '/hello/')
  t.equal(answer.status, 401)
  t.match(answer.body, { type: Problems.notConfigured })
})

t.test('a host app whose issuer cannot be reached says so at start, with or without a logger of its own', async (t) => {
  // A port that was free a moment ago: connections to it are refused, as when the provider is down.
  const [port = 0] = await freePorts(1)
  const issuer = `http://127.0.0.1:${String(port)}`
  const settings = resolveAuthSettings({ issuer, audience: HOST_AUDIENCE })

  // Fastify() without a logger, as the README's library section starts: a process warning on stderr.
  const warnings: Error[] = []
  const onWarning = (warning: Error) => { warnings.push(warning) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(problemDetails)
  await app.register(bearerAuth, { settings })
  await app.register(greetingV3, { prefix: '/hello' })
  await app.ready()
  await pollUntil(() => warnings.find((w) => (w as { code?: string }).code === 'MRMAT_IDENTITY_PROVIDER_UNREACHABLE'),
    5_000, 'the process warning')
  const [warning] = warnings
  t.match(warning?.message, new RegExp(`^the identity provider ${issuer} cannot be reached \\(fetch failed: `
    + 'ECONNREFUSED\\): routes that need a token answer 503 until it can'), 'names the issuer and why')
  t.equal((await send(app, '/hello/')).status, 401, 'the app serves meanwhile')

  // With a logger: a warn line at start, and no process warning besides.
  const lines: Record<string, unknown>[] = []
  const logged = Fastify({
    logger: {
      level: 'info',
      stream: { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } },
    },
  })
  t.teardown(() => logged.close())
  const before = warnings.length
  await logged.register(bearerAuth, { settings })
  await logged.ready()
  await pollUntil(() => lines.find((line) => line.msg === 'identity provider discovery failed; retrying'), 5_000,
    'the warn line')
  t.match(lines.find((line) => line.level === 40), { issuer, msg: 'identity provider discovery failed; retrying' })
  t.equal(warnings.length, before, 'no process warning when the host logs')
})
