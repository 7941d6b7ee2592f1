import { decodeProtectedHeader } from 'jose'
import { pino } from 'pino'
import t from 'tap'
import { DEFAULT_TIMINGS, IdentityProvider } from '#src/plugins/auth/identity-provider.js'
import { startTestProvider } from './fixtures/oidc-provider.js'
import { build } from './helpers/app.js'
import { settingsFromSecrets } from './helpers/auth.js'
import { send } from './helpers/http.js'
import { elapse } from './helpers/wait.js'

// A key known at once (fetched, settled and inside its TTL) is handed to @fastify/jwt at once, so that a token is
// verified, or refused, without waiting for a promise. What is known at once must be what the asynchronous look-up
// would give, and never a key past its TTL.

const KEY_TTL_MS = 300

t.test('a key is known at once only while get-jwks holds it fresh, and it is the key the look-up gives', async (t) => {
  const provider = await startTestProvider(t)
  const identity = new IdentityProvider(await settingsFromSecrets(t, provider), pino({ level: 'silent' }),
    { ...DEFAULT_TIMINGS, keyCacheTtl: KEY_TTL_MS })
  t.teardown(() => identity.close())
  await identity.start()
  const header = decodeProtectedHeader(await provider.jwt())
  t.equal(identity.knownPublicKey(header), undefined, 'not before it was fetched')
  const key = await identity.publicKey(header)
  t.match(key, /^-----BEGIN PUBLIC KEY-----/)
  t.equal(identity.knownPublicKey(header), key, 'then at once, the same key')
  t.equal(identity.knownPublicKey({ ...header, alg: 'ES256' }), undefined, 'not for another alg of the kid')
  t.equal(identity.knownPublicKey({ ...header, kid: 'made-up' }), undefined, 'not for another kid')
  t.equal(identity.knownPublicKey({ alg: header.alg }), undefined, 'not without a kid')

  await elapse(KEY_TTL_MS + 100)
  t.equal(identity.knownPublicKey(header), undefined, 'not once its TTL has passed: it is fetched again')
  const jwks = provider.requests('/jwks')
  t.equal(await identity.publicKey(header), key, 'the look-up fetches it again')
  t.ok(provider.requests('/jwks') > jwks, 'from the provider')
  t.equal(identity.knownPublicKey(header), key, 'and it is known at once again')
})

t.test('tokens verified with a key known at once: good ones pass, bad ones are refused as before', async (t) => {
  const provider = await startTestProvider(t)
  const app = await build(t, { auth: await settingsFromSecrets(t, provider) })
  const first = await send(app, '/api/greeting/v3/', { token: await provider.jwt() })
  t.equal(first.status, 200, 'the first token fetches the key')
  const bob = await provider.sign({ sub: 'bob', preferred_username: 'Bob' })
  const second = await send(app, '/api/greeting/v3/', { token: bob })
  t.same([second.status, second.body], [200, { message: 'Hello Bob' }], 'a new token with the known key')
  const good = await provider.jwt()
  const forged = `${good.slice(0, good.lastIndexOf('.'))}.${'A'.repeat(342)}`
  const refused = await send(app, '/api/greeting/v3/', { token: forged })
  t.same([refused.status, (refused.body as { title?: string } | undefined)?.title], [401, 'Invalid token'],
    'a forged signature under a known kid is refused')
  const expired = await send(app, '/api/greeting/v3/', {
    token: await provider.sign({ iat: Math.floor(Date.now() / 1000) - 600, exp: Math.floor(Date.now() / 1000) - 60 }),
  })
  t.match(expired.body, { status: 401, detail: /expired/ }, 'an expired one says so')
})
