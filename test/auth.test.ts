import { createPublicKey } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { decodeJwt, generateKeyPair } from 'jose'
import t, { type Test } from 'tap'
import { parseCommandLine } from '#src/cli/command-line.js'
import { AuthSettingsError, readClientSecrets, resolveAuthSettings } from '#src/plugins/auth/settings.js'
import { startTestProvider } from './fixtures/oidc-provider.js'
import { build, captureLogs } from './helpers/app.js'
import {
  Problems,
  READ_SCOPE,
  WRITE_SCOPE,
  challengeOf,
  echoes,
  personOpaqueToken,
  settingsFromSecrets,
  tamper,
  unsignedJwt,
} from './helpers/auth.js'
import { send, type Answer } from './helpers/http.js'
import { folder } from './helpers/folder.js'
import { freePorts } from './helpers/process.js'
import { pollUntil, within } from './helpers/wait.js'

const GREETING = '/api/greeting/v3/'
const b64url = (text: string): string => Buffer.from(text).toString('base64url')
const PROBLEM_TYPE = /^application\/problem\+json/
const AUDIENCE = 'mrmat-ts-api-fastify'
/** A route of the test's own that needs the write scope: greeting v3 needs none. */
const WRITE_ROUTE = '/test/write'

function writeRoute(app: FastifyInstance): void {
  app.get(WRITE_ROUTE, {
    schema: { security: [{ bearerAuth: [WRITE_SCOPE] }] },
  }, async (request) => ({ subject: request.identity?.subject ?? null }))
}

const nowInSeconds = (): number => Math.floor(Date.now() / 1000)

/** A 401 invalid_token refusal as RFC 6750 and the README describe it. */
function assertInvalidToken(t: Test, answer: Answer, what: string, options: { detail?: RegExp } = {}): void {
  t.equal(answer.status, 401, `${what}: 401`)
  t.match(answer.headers['content-type'], PROBLEM_TYPE, `${what}: a problem`)
  t.equal(challengeOf(answer)?.scheme, 'Bearer', `${what}: a Bearer challenge`)
  t.equal(challengeOf(answer)?.params.realm, AUDIENCE, `${what}: realm is the audience`)
  t.equal(challengeOf(answer)?.params.error, 'invalid_token', `${what}: error="invalid_token"`)
  t.match(answer.body, { type: Problems.invalidToken, title: 'Invalid token', status: 401 },
    `${what}: the invalid-token problem`)
  if (options.detail !== undefined) t.match(answer.body, { detail: options.detail }, `${what}: says why`)
}

function assertNotEchoed(t: Test, answer: Answer, token: string, what: string): void {
  t.notOk(echoes(answer, token), `${what}: the token is in no header and not in the body`)
  // A JWT's signature is the part that must never be seen; check it alone too, for partial echoes.
  const signature = token.split('.')[2]
  if (signature !== undefined && signature.length >= 16) {
    t.notOk(echoes(answer, signature), `${what}: nor its signature`)
  }
}

t.test('valid tokens are greeted by name', async (t) => {
  const provider = await startTestProvider(t, { clients: [{ id: 'nameless', secret: 'nameless-secret' }] })
  const app = await build(t, { auth: await settingsFromSecrets(t, provider), routes: writeRoute })

  const answer = await send(app, GREETING, { token: await provider.jwt() })
  t.equal(answer.status, 200)
  t.same(answer.body, { message: 'Hello test-client-display' }, 'by preferred_username')
  t.equal(answer.headers['www-authenticate'], undefined, 'no challenge on success')

  const nameless = await provider.jwt({ client: { id: 'nameless', secret: 'nameless-secret' } })
  t.notOk('preferred_username' in decodeJwt(nameless))
  t.same((await send(app, GREETING, { token: nameless })).body, { message: 'Hello nameless' },
    'a client without a display name by its client_id')

  const scp = await provider.sign({ scope: undefined, scp: [READ_SCOPE, WRITE_SCOPE] })
  t.same((await send(app, GREETING, { token: scp })).body, { message: 'Hello test-client-display' },
    'scp as an array (Entra ID)')
  t.equal((await send(app, WRITE_ROUTE, { token: scp })).status, 200, 'the scopes of an scp array count')
  const scpReadOnly = await provider.sign({ scope: undefined, scp: [READ_SCOPE] })
  t.equal((await send(app, WRITE_ROUTE, { token: scpReadOnly })).status, 403, 'and only those')

  const lowercase = await send(app, GREETING, { headers: { authorization: `bearer ${await provider.jwt()}` } })
  t.equal(lowercase.status, 200, 'the scheme is case-insensitive (RFC 7235)')

  // RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token. A fresh token, so that no cached verification hides it.
  const spaced = await send(app, GREETING, { headers: { authorization: `Bearer  ${await provider.jwt()}` } })
  t.match({ status: spaced.status, body: spaced.body }, { status: 200, body: { message: 'Hello test-client-display' } },
    'more than one space after Bearer is accepted')
})

t.test('settings from --issuer and --audience alone, without a client-secrets file', async (t) => {
  const provider = await startTestProvider(t)
  const auth = resolveAuthSettings({ issuer: provider.issuer, audience: provider.audience })
  t.match(auth, {
    issuer: provider.issuer,
    audience: AUDIENCE,
    clientId: undefined,
    clientSecret: undefined,
    introspectionEndpoint: undefined,
  })
  const app = await build(t, { auth })
  t.same((await send(app, GREETING, { token: await provider.jwt() })).body, { message: 'Hello test-client-display' },
    'JWTs verify through discovery')
  const opaque = await send(app, GREETING, { token: await provider.opaque() })
  assertInvalidToken(t, opaque, 'an opaque token without client credentials to introspect it', { detail: /opaque tokens cannot be introspected/ })
})

t.test('a request without a bearer token', async (t) => {
  const provider = await startTestProvider(t)
  const app = await build(t, { auth: await settingsFromSecrets(t, provider) })

  const none = await send(app, GREETING)
  t.equal(none.status, 401)
  t.match(none.headers['content-type'], PROBLEM_TYPE)
  t.equal(none.headers['www-authenticate'], `Bearer realm="${AUDIENCE}"`,
    'a bare challenge: no error param (RFC 6750 §3.1)')
  t.same(none.body, {
    type: Problems.tokenRequired,
    title: 'Token required',
    status: 401,
    detail: 'A bearer token is required in the Authorization header',
    instance: GREETING,
    requestId: none.headers['x-request-id'],
  })

  const token = await provider.jwt()
  const query = await send(app, `${GREETING}?access_token=${token}`)
  t.equal(query.status, 401, 'a token in the query string is not accepted')
  t.equal(query.headers['www-authenticate'], `Bearer realm="${AUDIENCE}"`)
  t.match(query.body, { type: Problems.tokenRequired, instance: GREETING, detail: /tokens in the query string are not accepted/ })
  assertNotEchoed(t, query, token, 'query token')

  const credentials = Buffer.from('test-client:secret').toString('base64')
  const basic = await send(app, GREETING, { headers: { authorization: `Basic ${credentials}` } })
  t.equal(basic.status, 401, 'Basic is not Bearer')
  t.equal(basic.headers['www-authenticate'], `Bearer realm="${AUDIENCE}"`, 'no error param for another scheme')
  t.match(basic.body, { type: Problems.tokenRequired })

  t.equal((await send(app, GREETING, { method: 'HEAD' })).status, 401, 'HEAD is checked too')
})

t.test('hostile and broken tokens are 401 invalid_token and never echoed', async (t) => {
  const provider = await startTestProvider(t)
  const other = await startTestProvider(t)
  const app = await build(t, { auth: await settingsFromSecrets(t, provider) })
  t.equal((await send(app, GREETING, { token: await provider.jwt() })).status, 200,
    'a valid token first, so the key is cached')

  const now = nowInSeconds()
  const real = decodeJwt(await provider.jwt({ scope: READ_SCOPE }))
  const publicPem = createPublicKey({ key: provider.privateJwk(), format: 'jwk' })
    .export({ type: 'spki', format: 'pem' }).toString()
  const publicJwk = JSON.stringify(provider.publicJwks().keys[0])
  const { privateKey: strangerKey } = await generateKeyPair('RS256')
  const readOnly = await provider.jwt({ scope: READ_SCOPE })

  const cases: { what: string, token: string, detail?: RegExp }[] = [
    { what: 'alg none with the real kid', token: unsignedJwt({ typ: 'at+jwt', kid: provider.kid }, real) },
    { what: 'alg none without a kid', token: unsignedJwt({ typ: 'JWT' }, real) },
    {
      what: 'HS256 keyed with the public key PEM',
      token: await provider.sign({}, { key: new TextEncoder().encode(publicPem), header: { alg: 'HS256' } }),
    },
    {
      what: 'HS256 keyed with the public JWK',
      token: await provider.sign({}, { key: new TextEncoder().encode(publicJwk), header: { alg: 'HS256' } }),
    },
    { what: 'a tampered sub', token: tamper(readOnly, { sub: 'admin' }) },
    { what: 'a tampered scope', token: tamper(readOnly, { scope: `${READ_SCOPE} ${WRITE_SCOPE}` }) },
    { what: 'a wrong issuer', token: await provider.sign({ iss: 'https://idp.example/realms/other' }) },
    { what: 'a wrong audience', token: await provider.jwt({ audience: 'other-api' }) },
    { what: 'expired beyond the tolerance', token: await provider.sign({ iat: now - 600, exp: now - 60 }), detail: /expired/ },
    { what: 'not valid until beyond the tolerance', token: await provider.sign({ nbf: now + 120 }), detail: /not valid yet/ },
    { what: 'an unknown kid', token: await provider.sign({}, { header: { kid: 'no-such-key' } }), detail: /not signed by a key of the identity provider/ },
    { what: 'a token of another provider', token: await other.jwt() },
    { what: 'another provider\'s key claiming our issuer', token: await other.sign({ iss: provider.issuer }) },
    { what: 'a stranger\'s key claiming our kid', token: await provider.sign({}, { key: strangerKey }) },
    { what: 'no sub', token: await provider.sign({ sub: undefined }) },
    { what: 'no exp', token: await provider.sign({ exp: undefined }) },
    { what: 'two words', token: 'a b', detail: /malformed/ },
    { what: 'garbage characters', token: '!!!<script>***', detail: /malformed/ },
    { what: 'a 10,000-character token', token: 'x'.repeat(10_000), detail: /malformed/ },
    { what: 'JWT-shaped junk', token: 'abc.def.ghi' },
    { what: 'a header that is not JSON', token: `${b64url('not json')}.${b64url('{}')}.c2ln` },
    { what: 'claims that are a JSON array', token: `${b64url('{"alg":"RS256"}')}.${b64url('[]')}.c2ln` },
    { what: 'a header that is JSON null', token: `${b64url('null')}.${b64url('{}')}.c2ln` },
  ]
  for (const { what, token, detail } of cases) {
    const answer = await send(app, GREETING, { token })
    assertInvalidToken(t, answer, what, detail === undefined ? {} : { detail })
    if (token.length >= 16) assertNotEchoed(t, answer, token, what)
  }

  for (const authorization of ['Bearer', 'Bearer ']) {
    const answer = await send(app, GREETING, { headers: { authorization } })
    assertInvalidToken(t, answer, JSON.stringify(authorization))
  }

  const slightlyExpired = await send(app, GREETING, { token: await provider.sign({ iat: now - 300, exp: now - 10 }) })
  t.equal(slightlyExpired.status, 200, 'expired 10 s ago: inside the 30 s tolerance')
  const almostValid = await send(app, GREETING, { token: await provider.sign({ nbf: now + 10 }) })
  t.equal(almostValid.status, 200, 'valid in 10 s: inside the tolerance')
  t.equal((await send(app, GREETING, { token: await provider.jwt() })).status, 200,
    'valid tokens still pass after all that')
})

t.test('a token is remembered once verified, and one that only ends like it is verified itself', async (t) => {
  const provider = await startTestProvider(t)
  const app = await build(t, { auth: await settingsFromSecrets(t, provider) })
  const alice = await provider.sign({ sub: 'alice', preferred_username: 'Alice' })
  const first = await send<{ message: string }>(app, GREETING, { token: alice })
  t.same([first.status, first.body?.message], [200, 'Hello Alice'], 'verified')
  // The same signature, so the same end, after another payload: the remembered token must not stand for it.
  const forgeries = [{ sub: 'mallory', preferred_username: 'Mallory' }, { preferred_username: 'Alice the admin' }]
  for (const changes of forgeries) {
    const forged = tamper(alice, changes)
    t.equal(forged.slice(-48), alice.slice(-48), 'the forged token ends as the verified one does')
    assertInvalidToken(t, await send(app, GREETING, { token: forged }), `a forged ${Object.keys(changes).join(', ')}`)
  }
  const again = await send<{ message: string }>(app, GREETING, { token: alice })
  t.same([again.status, again.body?.message], [200, 'Hello Alice'], 'and the verified token still passes as itself')
  const bob = await provider.sign({ sub: 'bob', preferred_username: 'Bob' })
  const other = await send<{ message: string }>(app, GREETING, { token: bob })
  t.same([other.status, other.body?.message], [200, 'Hello Bob'], 'another token is its own caller')
})

t.test('scopes: 403 insufficient_scope naming the scope, on GET and HEAD', async (t) => {
  const provider = await startTestProvider(t)
  const app = await build(t, { auth: await settingsFromSecrets(t, provider), routes: writeRoute })
  const readOnly = await provider.jwt({ scope: READ_SCOPE })

  const answer = await send(app, WRITE_ROUTE, { token: readOnly })
  t.equal(answer.status, 403)
  t.match(answer.headers['content-type'], PROBLEM_TYPE)
  t.same(challengeOf(answer), {
    scheme: 'Bearer',
    params: {
      realm: AUDIENCE,
      error: 'insufficient_scope',
      error_description: `The token lacks the scope ${WRITE_SCOPE}`,
      scope: WRITE_SCOPE,
    },
  })
  t.match(answer.body, {
    type: Problems.insufficientScope,
    title: 'Insufficient scope',
    status: 403,
    detail: new RegExp(WRITE_SCOPE),
    instance: WRITE_ROUTE,
  })
  assertNotEchoed(t, answer, readOnly, '403')

  const head = await send(app, WRITE_ROUTE, { token: readOnly, method: 'HEAD' })
  t.equal(head.status, 403, 'HEAD with too few scopes')
  t.equal(challengeOf(head)?.params.scope, WRITE_SCOPE)
  t.equal((await send(app, WRITE_ROUTE, { method: 'HEAD' })).status, 401, 'HEAD without a token')

  const writer = await provider.jwt({ scope: WRITE_SCOPE })
  t.equal((await send(app, WRITE_ROUTE, { token: writer, method: 'HEAD' })).status, 200, 'HEAD with the scope')
  t.same((await send(app, WRITE_ROUTE, { token: writer })).body, { subject: 'test-client' }, 'GET with the scope')

  const scopeless = await provider.jwt({ scope: '' })
  t.equal((await send(app, GREETING, { token: scopeless })).status, 200, 'greeting v3 needs a token but no scope')
  t.equal((await send(app, WRITE_ROUTE, { token: scopeless })).status, 403, 'no scope at all')
})

t.test('opaque tokens are introspected and the answers reused for a while', async (t) => {
  const provider = await startTestProvider(t)
  const app = await build(t, {
    auth: await settingsFromSecrets(t, provider),
    authTuning: { introspectionCacheTtl: 400 },
  })

  const alice = await personOpaqueToken(provider, 'alice')
  const first = await send(app, GREETING, { token: alice })
  t.equal(first.status, 200)
  t.same(first.body, { message: 'Hello alice' })
  for (let i = 0; i < 3; i++) await send(app, GREETING, { token: alice })
  t.equal(provider.requests('/token/introspection'), 1, 'introspected once for four calls')
  const reintrospected = await pollUntil(async () => {
    await send(app, GREETING, { token: alice })
    return provider.requests('/token/introspection') > 1 && provider.requests('/token/introspection')
  }, 3_000, 'introspection once the cache has expired')
  t.equal(reintrospected, 2, 'introspected again once introspectionCacheTtl ran out')

  const clientToken = await provider.opaque()
  const client = await send(app, GREETING, { token: clientToken })
  t.match({ status: client.status, body: client.body }, { status: 200, body: { message: 'Hello test-client-display' } },
    'a client-credentials opaque token greets its client')
  assertNotEchoed(t, client, clientToken, 'opaque')

  const revoked = await provider.opaque()
  await provider.revoke(revoked)
  const greet = async (token: string) => send(app, GREETING, { token })
  assertInvalidToken(t, await greet(revoked), 'a revoked opaque token', { detail: /not active/ })
  assertInvalidToken(t, await greet('notAnIssuedOpaqueToken0123456789'), 'an opaque token never issued', {
    detail: /not active/,
  })
  const elsewhere = await provider.opaque({ audience: 'other-api' })
  assertInvalidToken(t, await greet(elsewhere), 'an opaque token for another audience', { detail: /another audience/ })
})

t.test('without authentication configured protected routes are 401 and open ones work', async (t) => {
  const provider = await startTestProvider(t)
  const app = await build(t)
  for (const token of [undefined, await provider.jwt()]) {
    const answer = await send(app, GREETING, token === undefined ? {} : { token })
    t.equal(answer.status, 401)
    t.equal(answer.headers['www-authenticate'], `Bearer realm="${AUDIENCE}"`)
    t.match(answer.body, {
      type: Problems.notConfigured,
      title: 'Authentication not configured',
      status: 401,
      instance: GREETING,
    })
  }
  const open = await send(app, '/api/greeting/v1/')
  t.equal(open.status, 200)
  t.same(open.body, { message: 'Hello World' })
})

t.test('resolveAuthSettings and readClientSecrets', async (t) => {
  const dir = t.testdir()
  const secretsFile = async (name: string, content: unknown): Promise<string> => {
    const path = join(dir, name)
    await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content))
    return path
  }
  const web = {
    client_id: 'api-server',
    client_secret: 's3cret',
    issuer: 'https://idp.example/realms/mrmat',
    token_introspection_uri: 'https://idp.example/realms/mrmat/introspect',
    userinfo_uri: 'https://idp.example/realms/mrmat/userinfo',
    redirect_uris: [],
  }
  const secrets = readClientSecrets(await secretsFile('client_secrets.json', { web }))

  t.same(resolveAuthSettings({ secrets }), {
    issuer: web.issuer,
    audience: 'api-server',
    jwksUri: undefined,
    introspectionEndpoint: web.token_introspection_uri,
    clientId: 'api-server',
    clientSecret: 's3cret',
    clockTolerance: 30,
    tokenType: 'compatible',
  }, 'the audience defaults to web.client_id, and tokens are judged compatibly')

  t.match(resolveAuthSettings({
    secrets,
    issuer: 'https://other.example/',
    audience: 'flag-audience',
    jwksUri: 'https://keys.example/jwks',
    clockTolerance: 5,
    tokenType: 'strict',
  }), {
    issuer: 'https://other.example/',
    audience: 'flag-audience',
    jwksUri: 'https://keys.example/jwks',
    clientId: 'api-server',
    clockTolerance: 5,
    tokenType: 'strict',
  }, 'flags win over the file')

  const emptySecret = await secretsFile('empty-secret.json', { web: { ...web, client_secret: '' } })
  const withoutSecret = readClientSecrets(emptySecret)
  t.equal(resolveAuthSettings({ secrets: withoutSecret })?.clientSecret, undefined, 'an empty client_secret is none')
  t.equal(resolveAuthSettings({}), undefined, 'no issuer at all: no authentication')

  t.throws(() => resolveAuthSettings({ issuer: 'https://idp.example/' }), {
    constructor: AuthSettingsError,
    message: 'an audience is required: set --audience or --oidc-secrets',
  }, 'an issuer without an audience')
  t.throws(() => resolveAuthSettings({ audience: 'x' }), { constructor: AuthSettingsError, message: /need an issuer/ }, 'an audience without an issuer')
  t.throws(() => resolveAuthSettings({ issuer: 'ftp://idp.example/', audience: 'x' }), {
    constructor: AuthSettingsError,
    message: 'the issuer must be an http(s) URL: ftp://idp.example/',
  }, 'a non-http issuer')
  t.throws(() => resolveAuthSettings({ issuer: 'idp.example', audience: 'x' }), { message: /the issuer is not a URL/ })
  t.throws(() => resolveAuthSettings({ issuer: 'https://idp.example/', audience: 'x', jwksUri: 'file:///etc/keys' }), { message: /--jwks-uri must be an http\(s\) URL/ })
  t.throws(
    () => resolveAuthSettings({ secrets: { web: { ...web, token_introspection_uri: 'javascript:alert(1)' } } }),
    { message: /token_introspection_uri must be an http\(s\) URL/ },
  )

  const wrongShapes: [string, unknown][] = [
    ['no web key', { installed: web }],
    ['no issuer', { web: { client_id: 'api-server' } }],
    ['an empty client_id', { web: { ...web, client_id: '' } }],
    ['a numeric issuer', { web: { ...web, issuer: 42 } }],
    ['an array', [web]],
  ]
  for (const [what, content] of wrongShapes) {
    const path = await secretsFile('wrong.json', content)
    t.throws(() => readClientSecrets(path), { constructor: AuthSettingsError, message: /are not in the expected \{"web": \{"client_id", "issuer", \.\.\.\}\} form/ }, what)
  }
  const notJson = await secretsFile('not-json.json', '{"web": ')
  t.throws(() => readClientSecrets(notJson), { constructor: AuthSettingsError, message: /^cannot read the client secrets .*not-json\.json/ })
  t.throws(() => readClientSecrets(join(dir, 'missing.json')), { constructor: AuthSettingsError, message: /ENOENT/ })
})

t.test('--issuer with no reachable provider: the app starts, warns, answers 503, and closes', async (t) => {
  const [port = 0] = await freePorts(1)
  const issuer = `http://127.0.0.1:${String(port)}`
  const instance = ['--instance-path', folder(t)]
  const invocation = await parseCommandLine([...instance, '--issuer', issuer, '--audience', AUDIENCE], {})
  const auth = 'config' in invocation ? invocation.config.auth : undefined
  t.match(auth, { issuer, audience: AUDIENCE }, 'the flags give the settings')
  const logs = captureLogs()
  const app = await build(t, { auth, logger: { level: 'info', stream: logs.stream }, discovered: false })
  const warning = await pollUntil(() => logs.lines.find((line) => line.level === 40), 10_000, 'a warning')
  t.match(warning, { msg: 'identity provider discovery failed; retrying', issuer }, 'a warning names the issuer')

  const someJwt = unsignedJwt({ alg: 'RS256', kid: 'k' }, { sub: 'x' }).replace(/\.$/, '.c2lnbmF0dXJl')
  const answer = await send(app, GREETING, { token: someJwt })
  t.equal(answer.status, 503)
  t.ok(answer.headers['retry-after'], 'with Retry-After')
  t.match(answer.body, { type: Problems.unavailable })
  t.equal((await send(app, '/api/greeting/v1/')).status, 200, 'open routes work')
  await t.resolves(within(app.close(), 5_000, 'closing'), 'and it closes while still retrying')

  await t.rejects(parseCommandLine(['migrate', ...instance, '--issuer', issuer], {}), {
    message: /an audience is required/,
    exitCode: 2,
  }, 'an issuer without an audience is a usage error')
})
