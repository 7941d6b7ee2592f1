import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { resolveAuthSettings } from '#src/plugins/auth/settings.js'
import { deviceTokens, startTestProvider } from './fixtures/oidc-provider.js'
import { build, captureLogs } from './helpers/app.js'
import { challengeOf, Problems, READ_SCOPE, settingsFromSecrets, WRITE_SCOPE } from './helpers/auth.js'
import { send } from './helpers/http.js'

// Only access tokens for this API pass: refresh tokens, ID tokens and other JWTs a provider signs are refused, and a
// stranger cannot make the server spend its introspection credentials freely. Tokens from a real oidc-provider.

const GREETING = '/api/greeting/v3/'
const RESOURCES = '/api/resource/v1/'
const PERSON_SCOPE = `openid profile offline_access ${READ_SCOPE} ${WRITE_SCOPE}`

t.test('a refresh token sent as a bearer token is refused, though the provider introspects it active', async (t) => {
  const provider = await startTestProvider(t)
  const app = await build(t, { auth: await settingsFromSecrets(t, provider) })
  const tokens = await deviceTokens(provider, 'alice', { scope: PERSON_SCOPE })
  t.ok(tokens.refresh_token, 'the device flow gave a refresh token')
  t.equal((await send(app, GREETING, { token: tokens.access_token })).status, 200, 'the access token passes')

  const refresh = tokens.refresh_token ?? ''
  for (const path of [GREETING, RESOURCES]) {
    const answer = await send(app, path, { token: refresh })
    t.equal(answer.status, 401, `${path}: a refresh token is 401`)
    t.match(answer.body, { type: Problems.invalidToken, detail: /not an access token for this API/ })
    t.equal(challengeOf(answer)?.params.error, 'invalid_token')
  }
  const write = await send(app, RESOURCES, { method: 'POST', token: refresh, json: { name: 'by a refresh token' } })
  t.equal(write.status, 401, 'and it writes nothing in the person\'s name')
  const list = await send<{ resources: unknown[] }>(app, RESOURCES, { token: tokens.access_token })
  t.same(list.body?.resources, [], 'no resource was created')
})

t.test('an ID token, and JWTs of other types, are not access tokens', async (t) => {
  const provider = await startTestProvider(t)
  const app = await build(t, { auth: await settingsFromSecrets(t, provider) })
  const tokens = await deviceTokens(provider, 'bob', { scope: PERSON_SCOPE })
  t.ok(tokens.id_token, 'the device flow gave an ID token')
  // The provider's ID token is for the client, not the API: refused for its audience already. One made for the API's
  // audience, as a provider whose audience default is the client id would make it, is refused for what it is.
  const idToken = await send(app, GREETING, { token: tokens.id_token ?? '' })
  t.equal(idToken.status, 401, 'the provider\'s ID token: 401')

  const nonce = { nonce: 'n-0S6_WzA2Mj', at_hash: 'HK6E_P6Dh8Y93mRNtsDB1Q' }
  const refused: [string, Record<string, unknown>, Record<string, unknown>][] = [
    ['typ JWT with a nonce (an ID token for this audience)', { typ: 'JWT' }, nonce],
    ['no typ with at_hash (an ID token)', { typ: undefined }, { at_hash: 'x' }],
    ['typ logout+jwt', { typ: 'logout+jwt' }, {}],
    ['typ id_token+jwt', { typ: 'id_token+jwt' }, {}],
    ['typ JWT without scope, scp or roles', { typ: 'JWT' }, { scope: undefined }],
    ['Keycloak\'s ID token: payload typ ID', { typ: 'JWT' }, { typ: 'ID' }],
    ['Keycloak\'s refresh token: payload typ Refresh', { typ: 'JWT' }, { typ: 'Refresh' }],
  ]
  for (const [what, header, payload] of refused) {
    const answer = await send(app, GREETING, { token: await provider.sign(payload, { header }) })
    t.equal(answer.status, 401, `${what}: 401`)
    t.match(answer.body, { detail: /not an access token for this API/ }, `${what}: says why`)
  }

  const accepted: [string, Record<string, unknown>, Record<string, unknown>][] = [
    ['typ at+jwt (RFC 9068)', { typ: 'at+jwt' }, {}],
    ['typ application/at+jwt', { typ: 'application/at+jwt' }, {}],
    ['Keycloak: typ JWT, payload typ Bearer', { typ: 'JWT' }, { typ: 'Bearer', preferred_username: 'kc-user' }],
    ['Entra ID, delegated: typ JWT, scp', { typ: 'JWT' }, { scope: undefined, scp: '', azp: 'spa', name: 'x' }],
    ['Entra ID, an application: typ JWT, roles', { typ: 'JWT' }, { scope: undefined, roles: ['Things.Read'] }],
    ['no typ, with scope', { typ: undefined }, {}],
  ]
  for (const [what, header, payload] of accepted) {
    const answer = await send(app, GREETING, { token: await provider.sign(payload, { header }) })
    t.equal(answer.status, 200, `${what}: 200`)
  }
})

t.test('--token-type strict takes only at+jwt', async (t) => {
  const provider = await startTestProvider(t)
  const auth = { ...await settingsFromSecrets(t, provider), tokenType: 'strict' as const }
  const app = await build(t, { auth })
  t.equal((await send(app, GREETING, { token: await provider.jwt() })).status, 200, 'the provider\'s at+jwt')
  const keycloak = await provider.sign({ typ: 'Bearer' }, { header: { typ: 'JWT' } })
  const refused = await send(app, GREETING, { token: keycloak })
  t.equal(refused.status, 401, 'a Keycloak-shaped token is refused')
  t.match(refused.body, { detail: /type is "JWT", not at\+jwt/ })
})

/** An introspection endpoint of the test's own: counts calls and answers what `answer` says. */
async function introspectionStub(t: Test, answer: (token: string) => { status: number, body: unknown }):
Promise<{ url: string, calls: () => number }> {
  let calls = 0
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let text = ''
    req.setEncoding('utf8').on('data', (chunk: string) => { text += chunk }).on('end', () => {
      calls++
      const { status, body } = answer(new URLSearchParams(text).get('token') ?? '')
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.close(() => { resolve() }) }))
  return { url: `http://127.0.0.1:${String((server.address() as AddressInfo).port)}/introspect`, calls: () => calls }
}

async function opaqueApp(t: Test, stub: { url: string }, introspectionRate?: number) {
  const provider = await startTestProvider(t)
  const auth = resolveAuthSettings({
    secrets: {
      web: {
        client_id: 'api', client_secret: 'secret', issuer: provider.issuer, token_introspection_uri: stub.url,
      },
    },
    audience: provider.audience,
  })
  return build(t, { auth, authTuning: introspectionRate === undefined ? {} : { introspectionRate } })
}

t.test('junk opaque tokens: refusals are remembered, one question per token, a bounded rate of new ones', async (t) => {
  const stub = await introspectionStub(t, () => ({ status: 200, body: { active: false } }))
  const app = await opaqueApp(t, stub, 5)
  const junk = 'a-junk-opaque-token-0123456789'
  const repeated = await Promise.all(Array.from({ length: 20 }, async () => send(app, GREETING, { token: junk })))
  t.same(repeated.map((a) => a.status), Array(20).fill(401), 'the same junk token 20 times at once: 401 each')
  t.equal(stub.calls(), 1, 'and introspected once')
  t.equal((await send(app, GREETING, { token: junk })).status, 401)
  t.equal(stub.calls(), 1, 'a refused token is remembered: no second introspection')

  const distinct = await Promise.all(Array.from({ length: 60 }, async (_, i) =>
    send(app, GREETING, { token: `junk-${String(i)}-abcdefghijklmnop` })))
  const statuses = distinct.map((a) => a.status)
  t.ok(stub.calls() - 1 <= 12, `60 distinct junk tokens cost ${String(stub.calls() - 1)} introspections, not 60`)
  t.ok(statuses.every((s) => s === 401 || s === 503), 'each is refused: 401 when asked, 503 beyond the rate')
  const limited = distinct.find((a) => a.status === 503)
  t.match(limited?.body, { type: Problems.unavailable, detail: /Too many unknown tokens/ }, 'the rate says so')
  t.equal(limited?.headers['retry-after'], '5', 'with Retry-After')
})

t.test('a provider that refuses to introspect a token (400) makes it a 401, not a 503', async (t) => {
  const stub = await introspectionStub(t, () => ({ status: 400, body: { error: 'invalid_request' } }))
  const app = await opaqueApp(t, stub)
  const answer = await send(app, GREETING, { token: 'malformed-in-the-providers-eyes' })
  t.equal(answer.status, 401)
  t.match(answer.body, { type: Problems.invalidToken })
})

t.test('an introspection answer without this API\'s aud, or of another token type, is refused', async (t) => {
  const answers: Record<string, unknown> = {
    'no-aud-xxxxxxxxxxxxxxxx': { active: true, sub: 'alice', scope: READ_SCOPE },
    'refresh-xxxxxxxxxxxxxxx': { active: true, sub: 'alice', aud: 'mrmat-ts-api-fastify', token_type: 'refresh_token' },
    'keycloak-refresh-xxxxxx': { active: true, sub: 'alice', aud: 'mrmat-ts-api-fastify', typ: 'Refresh' },
    'other-api-xxxxxxxxxxxxx': { active: true, sub: 'alice', aud: 'another-api', token_type: 'Bearer' },
    'fine-xxxxxxxxxxxxxxxxxx': { active: true, sub: 'alice', aud: ['x', 'mrmat-ts-api-fastify'], token_type: 'Bearer' },
  }
  const stub = await introspectionStub(t, (token) => ({ status: 200, body: answers[token] ?? { active: false } }))
  const app = await opaqueApp(t, stub)
  for (const token of Object.keys(answers)) {
    const expected = token.startsWith('fine') ? 200 : 401
    const what = `${token.split('-')[0] ?? ''}: ${String(expected)}`
    t.equal((await send(app, GREETING, { token })).status, expected, what)
  }
})

t.test('a token in the query string is refused, and neither it nor the query reaches the log', async (t) => {
  const provider = await startTestProvider(t)
  const { stream, lines } = captureLogs()
  const app = await build(t, { auth: await settingsFromSecrets(t, provider), logger: { level: 'trace', stream } })
  const token = await provider.jwt()
  const answer = await send(app, `${GREETING}?access_token=${token}`)
  t.equal(answer.status, 401)
  t.match(answer.body, { detail: /tokens in the query string are not accepted/ })
  const log = JSON.stringify(lines)
  t.ok(lines.some((line) => line.msg === 'request' && line.path === GREETING), 'the request is logged by its path')
  t.notOk(log.includes(token), 'the token is nowhere in the log')
  t.notOk(log.includes('access_token'), 'nor is the query string')
})
