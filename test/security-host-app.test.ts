import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import bearerAuth from '#src/plugins/auth/plugin.js'
import problemDetails from '#src/plugins/problem-details.js'
import { startTestProvider } from './fixtures/oidc-provider.js'
import { captureLogs } from './helpers/app.js'
import { Problems, settingsFromSecrets } from './helpers/auth.js'
import { send } from './helpers/http.js'

// A host app of its own declares bearerAuth on its routes in the ways that go wrong: the token check cannot be
// installed on them, so they must fail closed (refused, and the mistake logged), never serve data.

const secured = { schema: { security: [{ bearerAuth: [] }] } }
const secret = async () => ({ secret: 'data' })

interface Case {
  name: string
  wire: (host: FastifyInstance, register: () => Promise<unknown>) => Promise<void>
}

const cases: Case[] = [
  {
    name: 'declared before the auth plugin is registered',
    wire: async (host, register) => {
      host.get('/secret', secured, secret)
      await register()
    },
  },
  {
    name: 'auth registered without await, the route right after',
    wire: async (host, register) => {
      void register()
      host.get('/secret', secured, secret)
    },
  },
  {
    name: 'auth registered in a sibling context',
    wire: async (host, register) => {
      await host.register(async (sibling) => {
        await register.call(sibling)
      })
      host.get('/secret', secured, secret)
    },
  },
]

async function hostApp(t: Test, wire: Case['wire']) {
  const provider = await startTestProvider(t)
  const settings = await settingsFromSecrets(t, provider)
  const { stream, lines } = captureLogs()
  const host = Fastify({ logger: { level: 'info', stream } })
  t.teardown(() => host.close())
  await host.register(problemDetails)
  await wire(host, async function register(this: FastifyInstance | undefined) {
    await (this ?? host).register(bearerAuth, { settings })
  })
  await host.ready()
  await host.identityProvider?.start()
  return { host, provider, lines }
}

for (const c of cases) {
  t.test(`a route declaring bearerAuth fails closed when ${c.name}`, async (t) => {
    const { host, provider, lines } = await hostApp(t, c.wire)
    const token = await provider.jwt()
    for (const options of [{}, { token }]) {
      const answer = await send(host, '/secret', options)
      t.equal(answer.status, 401, `${'token' in options ? 'with' : 'without'} a token: refused`)
      t.notMatch(answer.text, /data/, 'no data')
      t.match(answer.body, { type: Problems.notConfigured })
    }
    const logged = lines.find((line) => line.route === 'GET /secret')
    t.match(logged?.msg, /declares bearerAuth security, but the token check is not installed/, 'the mistake is logged')
  })
}

t.test('declared after the auth plugin, in its context, the route is checked', async (t) => {
  const { host, provider } = await hostApp(t, async (host, register) => {
    await register()
    host.get('/secret', secured, secret)
  })
  t.equal((await send(host, '/secret')).status, 401, 'no token: 401')
  const answer = await send(host, '/secret', { token: await provider.jwt() })
  t.same([answer.status, answer.body], [200, { secret: 'data' }], 'a valid token: the data')
})
