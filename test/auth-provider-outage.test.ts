import { createServer, type AddressInfo, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { resolveAuthSettings } from '#src/plugins/auth/settings.js'
import { startTestProvider, type TestProvider } from './fixtures/oidc-provider.js'
import { build } from './helpers/app.js'
import { Problems, personOpaqueToken, settingsFromSecrets } from './helpers/auth.js'
import { send } from './helpers/http.js'
import { elapse, pollUntil, within } from './helpers/wait.js'

const GREETING = '/api/greeting/v3/'
const OPEN = '/api/greeting/v1/'
const DISCOVERY = '/.well-known/openid-configuration'
const STARTUP_BOUND_MS = 10_000
const CLIENT_PATIENCE_MS = 5_000

/** A token with a kid the provider never published, each one different. */
async function bogusKid(provider: TestProvider, n: number): Promise<string> {
  return provider.sign({}, { header: { kid: `made-up-${String(n)}` } })
}

/** A TCP server that accepts connections and never answers: a provider that hangs. Closed after the test. */
async function silentServer(t: Test): Promise<string> {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => { resolve() }))
  })
  return `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`
}

t.test('the provider down at startup: the app starts, answers 503 with Retry-After, and recovers', async (t) => {
  const provider = await startTestProvider(t)
  const auth = await settingsFromSecrets(t, provider)
  const jwt = await provider.jwt()
  const opaque = await personOpaqueToken(provider, 'alice')
  await provider.stop()

  const app = await within(
    build(t, { auth, authTuning: { timings: { retryDelay: [50, 200] } }, discovered: false }),
    STARTUP_BOUND_MS,
    'starting with the provider down',
  )
  for (const [what, token] of [['a JWT', jwt], ['an opaque token', opaque]] as const) {
    const answer = await send(app, GREETING, { token })
    t.equal(answer.status, 503, `${what}: 503`)
    t.match(answer.headers['retry-after'], /^\d+$/, `${what}: Retry-After in seconds`)
    t.match(answer.body, {
      type: Problems.unavailable,
      title: 'Identity provider unavailable',
      status: 503,
      instance: GREETING,
    }, `${what}: the problem`)
    t.notOk(answer.text.includes(token), `${what}: not echoed`)
  }
  t.equal((await send(app, GREETING)).status, 401, 'no token is still 401: that needs no provider')
  t.equal((await send(app, OPEN)).status, 200, 'the open greeting works meanwhile')

  await provider.start()
  const recovered = await pollUntil(async () => {
    const answer = await send(app, GREETING, { token: jwt })
    return answer.status !== 503 && answer
  }, 5_000, 'an answer other than 503')
  t.equal(recovered.status, 200, 'tokens pass once discovery is retried')
  t.same(recovered.body, { message: 'Hello test-client-display' })
  t.same((await send(app, GREETING, { token: opaque })).body, { message: 'Hello alice' }, 'opaque ones too')
  t.equal((await send(app, OPEN)).status, 200, 'and the open greeting still does')
  t.ok(provider.requests(DISCOVERY) >= 1, 'discovery was retried')
})

t.test('a token that comes while a just started server is reaching the provider waits for it, not a 503', async (t) => {
  const provider = await startTestProvider(t)
  const auth = await settingsFromSecrets(t, provider)
  const [jwt, opaque] = await Promise.all([provider.jwt(), personOpaqueToken(provider, 'alice')])
  provider.resetRequestCounts()
  provider.fault(DISCOVERY, { delayMs: 400 })
  const app = await build(t, { auth, discovered: false })
  const [byJwt, byOpaque] = await Promise.all([
    send(app, GREETING, { token: jwt }),
    send(app, GREETING, { token: opaque }),
  ])
  t.same([byJwt.status, byJwt.body], [200, { message: 'Hello test-client-display' }], 'a JWT: answered once discovered')
  t.same([byOpaque.status, byOpaque.body], [200, { message: 'Hello alice' }], 'an opaque token too')
  t.equal(provider.requests(DISCOVERY), 1, 'the requests waited for the server\'s own discovery, and fetched none')
})

t.test('a provider that never answers discovery: a token gets 503 within the fetch timeout', async (t) => {
  const provider = await startTestProvider(t)
  const silent = await silentServer(t)
  const auth = resolveAuthSettings({ issuer: silent, audience: provider.audience })
  const app = await build(t, { auth, authTuning: { timings: { fetchTimeout: 300 } }, discovered: false })
  const started = Date.now()
  const answer = await send(app, GREETING, { token: await provider.jwt() })
  t.equal(answer.status, 503)
  t.match(answer.body, { type: Problems.unavailable, detail: 'The identity provider has not been reached yet' })
  t.ok(Date.now() - started < CLIENT_PATIENCE_MS, 'answered before a client would give up')
})

t.test('a JWKS endpoint that never answers: 503 within the fetch timeout, not a hang', async (t) => {
  const provider = await startTestProvider(t)
  const silent = await silentServer(t)
  const auth = resolveAuthSettings({ issuer: provider.issuer, audience: provider.audience, jwksUri: `${silent}/jwks` })
  // Discovery still comes from the provider, and build() waits for it: the 503 is the JWKS fetch timing out.
  const app = await build(t, { auth, authTuning: { timings: { fetchTimeout: 300 } } })
  const started = Date.now()
  const answer = await send(app, GREETING, { token: await provider.jwt() })
  t.equal(answer.status, 503)
  t.match(answer.body, { type: Problems.unavailable })
  t.ok(Date.now() - started < CLIENT_PATIENCE_MS, 'answered before a client would give up')
})

t.test('the provider down once its key is cached', async (t) => {
  const provider = await startTestProvider(t)
  const app = await build(t, { auth: await settingsFromSecrets(t, provider) })
  const opaque = await personOpaqueToken(provider, 'alice')
  t.equal((await send(app, GREETING, { token: await provider.jwt() })).status, 200, 'the key is fetched')
  await provider.stop()

  for (let i = 0; i < 3; i++) {
    const fresh = await provider.sign({ sub: `caller-${String(i)}`, preferred_username: `caller-${String(i)}` })
    t.same((await send(app, GREETING, { token: fresh })).body, { message: `Hello caller-${String(i)}` },
      `new token ${String(i)} signed with the cached key`)
  }
  // A kid the cache lacks needs the provider: it may be a made-up kid or a key rotated in a moment
  // ago, and only the unreachable provider could tell. So: try again later.
  const unknown = await send(app, GREETING, { token: await bogusKid(provider, 1) })
  t.equal(unknown.status, 503, 'an unknown kid cannot be checked: 503')
  t.equal(unknown.headers['retry-after'], '5')
  const introspect = await send(app, GREETING, { token: opaque })
  t.equal(introspect.status, 503, 'an opaque token cannot be introspected: 503')
  t.equal((await send(app, OPEN)).status, 200)
})

t.test('an unknown kid while the provider is down is judged by a fresh key set, which fails: 503', async (t) => {
  const provider = await startTestProvider(t)
  const timings = { keySetInterval: 100 }
  const app = await build(t, { auth: await settingsFromSecrets(t, provider), authTuning: { timings } })
  t.equal((await send(app, GREETING, { token: await provider.jwt() })).status, 200)
  await provider.stop()
  const answer = await send(app, GREETING, { token: await bogusKid(provider, 1) })
  t.equal(answer.status, 503, 'a kid the cached keys lack cannot be checked while the provider is down: 503')
})

t.test('keys outlive their cache TTL while the provider is down', async (t) => {
  const keyCacheTtl = 400
  const cooldown = 250
  const provider = await startTestProvider(t)
  const app = await build(t, {
    auth: await settingsFromSecrets(t, provider),
    authTuning: { timings: { keyCacheTtl, keySetInterval: cooldown } },
  })
  t.equal((await send(app, GREETING, { token: await provider.jwt() })).status, 200, 'the key is fetched')
  await provider.stop()
  await elapse(keyCacheTtl + 50)

  const greet = async (token: string): Promise<number> => (await send(app, GREETING, { token })).status
  t.equal(await greet(await provider.sign()), 200, 'the first new token after the TTL: the stale key')
  const next = await Promise.all([provider.sign(), provider.sign()].map(async (token) => greet(await token)))
  t.same(next, [200, 200], 'the following ones too (README: keys are kept while the provider is unreachable)')
})

t.test('one JWKS fetch serves repeated and new tokens of the same key', async (t) => {
  const provider = await startTestProvider(t)
  const app = await build(t, { auth: await settingsFromSecrets(t, provider) })
  const token = await provider.jwt()
  for (let i = 0; i < 3; i++) t.equal((await send(app, GREETING, { token })).status, 200)
  t.equal(provider.requests('/jwks'), 1, 'the same token three times: one JWKS fetch')
  for (let i = 0; i < 3; i++) t.equal((await send(app, GREETING, { token: await provider.jwt() })).status, 200)
  t.equal(provider.requests('/jwks'), 1, 'new tokens of the same key: no further fetch')
  t.equal(provider.requests(DISCOVERY), 1, 'discovery once')
})

t.test('a flood of made-up kids: each 401, a key-set fetch a second at most, real keys never refused', async (t) => {
  const interval = 1000
  const provider = await startTestProvider(t)
  const timings = { keySetInterval: interval }
  const app = await build(t, { auth: await settingsFromSecrets(t, provider), authTuning: { timings } })
  t.equal((await send(app, GREETING, { token: await provider.jwt() })).status, 200)
  const fetched = provider.requests('/jwks')
  let next = 0
  const started = Date.now()
  const flood = async (): Promise<number[]> => {
    const bogus = await Promise.all(Array.from({ length: 50 }, async () => bogusKid(provider, next++)))
    return (await Promise.all(bogus.map(async (token) => send(app, GREETING, { token })))).map((a) => a.status)
  }

  const [first, valid] = await Promise.all([
    flood(),
    Promise.all(Array.from({ length: 5 }, async (_, i) =>
      send(app, GREETING, { token: await provider.sign({ jti: `v${String(i)}` }) }))),
  ])
  t.same(first, Array(50).fill(401), 'every made-up kid is 401')
  t.same(valid.map((a) => a.status), Array(5).fill(200), 'valid tokens pass during the flood')

  // The provider rotates its keys while strangers keep flooding: the new key is published, so it must pass.
  const rotated = await provider.rotateKeys()
  const [second, ofNewKey] = await Promise.all([
    flood(),
    (async () => send(app, GREETING, { token: await provider.jwt() }))(),
  ])
  t.same(second, Array(50).fill(401))
  t.equal(ofNewKey.status, 200, `a token of the freshly published key ${rotated} passes in the middle of the flood`)
  const third = await flood()
  t.same(third, Array(50).fill(401))
  const fetches = provider.requests('/jwks') - fetched
  const bound = Math.ceil((Date.now() - started) / interval) + 1
  t.ok(fetches >= 1 && fetches <= bound, `${String(fetches)} key-set fetches for 150 made-up kids: 1 a second at most`)
})

t.test('a real kid with the wrong alg refuses that token alone', async (t) => {
  const provider = await startTestProvider(t)
  // A fresh server: the first token it sees names the real kid with the wrong alg.
  const app = await build(t, { auth: await settingsFromSecrets(t, provider) })
  const wrongAlg = await provider.sign({}, { header: { alg: 'PS256' } })
  const refused = await send(app, GREETING, { token: wrongAlg })
  t.equal(refused.status, 401, 'the kid is real, the alg is not its key\'s: 401')
  t.equal((await send(app, GREETING, { token: await provider.sign({ jti: 'after' }) })).status, 200,
    'a right token of the same kid right after: 200, no penalty on the kid')
})

t.test('key rotation needs no restart', async (t) => {
  const provider = await startTestProvider(t)
  const timings = { keySetInterval: 300 }
  const app = await build(t, { auth: await settingsFromSecrets(t, provider), authTuning: { timings } })
  const oldKid = provider.kid
  t.equal((await send(app, GREETING, { token: await provider.jwt() })).status, 200)
  const newKid = await provider.rotateKeys()
  t.not(newKid, oldKid)

  const rotated = await send(app, GREETING, { token: await provider.jwt() })
  t.equal(rotated.status, 200, 'a token of the new key')
  t.same(rotated.body, { message: 'Hello test-client-display' })
  t.equal(provider.requests('/jwks'), 2, 'found by one fetch of the key set')
  const ofOldKey = await provider.sign({}, { key: 'previous' })
  t.equal((await send(app, GREETING, { token: ofOldKey })).status, 200, 'a new token of the old key')
  t.equal((await send(app, GREETING, { token: await provider.jwt() })).status, 200, 'another of the new key')
  t.equal(provider.requests('/jwks'), 2, 'without further fetches')
})

t.test('a key in the JWKS just fetched is usable at once', async (t) => {
  const provider = await startTestProvider(t)
  const auth = await settingsFromSecrets(t, provider)

  await t.test('both keys of a rotation, at a cold start', async (t) => {
    await provider.rotateKeys()
    const app = await build(t, { auth })
    const ofOldKey = await provider.sign({}, { key: 'previous' })
    t.equal((await send(app, GREETING, { token: ofOldKey })).status, 200, 'the old key: fetches the JWKS with both')
    t.equal((await send(app, GREETING, { token: await provider.jwt() })).status, 200, 'the new key')
  })

  await t.test('a valid token right after a foreign one', async (t) => {
    const other = await startTestProvider(t)
    const app = await build(t, { auth })
    t.equal((await send(app, GREETING, { token: await other.jwt() })).status, 401, 'another provider\'s token')
    t.equal((await send(app, GREETING, { token: await provider.jwt() })).status, 200,
      'a valid one is not refused because a foreign kid was looked up a moment ago')
  })
})
