import { readFile } from 'node:fs/promises'
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, generateKeyPair, jwtVerify } from 'jose'
import t from 'tap'
import { approveDevice, denyDevice, startTestProvider, type TestProvider } from './fixtures/oidc-provider.js'

const READ = 'mrmat-ts-api-fastify-resource-read'
const WRITE = 'mrmat-ts-api-fastify-resource-write'
const JWT_SHAPE = /^[\w-]+\.[\w-]+\.[\w-]+$/

interface Discovery {
  issuer: string
  jwks_uri: string
  token_endpoint: string
  introspection_endpoint: string
  device_authorization_endpoint: string
}

async function discover(provider: TestProvider): Promise<Discovery> {
  const res = await fetch(`${provider.issuer}/.well-known/openid-configuration`)
  return await res.json() as Discovery
}

/** Verifies as a resource server would: keys from the discovered jwks_uri, issuer and audience pinned. */
async function verify(provider: TestProvider, token: string): Promise<Record<string, unknown>> {
  const { jwks_uri: jwksUri } = await discover(provider)
  const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(jwksUri)), {
    issuer: provider.issuer,
    audience: provider.audience,
    algorithms: ['RS256'],
  })
  return payload
}

async function introspect(provider: TestProvider, token: string,
  caller = provider.apiClient): Promise<Record<string, unknown>> {
  const res = await fetch(`${provider.issuer}/token/introspection`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${caller.id}:${caller.secret}`).toString('base64')}` },
    body: new URLSearchParams({ token }),
  })
  if (!res.ok) throw new Error(`introspection: ${String(res.status)} ${await res.text()}`)
  return await res.json() as Record<string, unknown>
}

t.test('discovery names the issuer, the JWKS and the introspection endpoint', async (t) => {
  const provider = await startTestProvider(t)
  t.match(provider.issuer, /^http:\/\/127\.0\.0\.1:\d+$/)
  const discovery = await discover(provider)
  t.equal(discovery.issuer, provider.issuer)
  t.equal(discovery.jwks_uri, `${provider.issuer}/jwks`)
  t.equal(discovery.introspection_endpoint, `${provider.issuer}/token/introspection`)
  t.equal(discovery.device_authorization_endpoint, `${provider.issuer}/device/auth`)
  const jwks = await (await fetch(discovery.jwks_uri)).json()
  t.same(jwks, provider.publicJwks(), 'publicJwks() is what /jwks serves')
  t.notOk(JSON.stringify(jwks).includes('"d"'), 'no private parts published')
})

t.test('jwt() is an RS256 at+jwt access token for the API that verifies against /jwks', async (t) => {
  const provider = await startTestProvider(t)
  const token = await provider.jwt()
  t.same(decodeProtectedHeader(token), { alg: 'RS256', typ: 'at+jwt', kid: provider.kid })
  const claims = await verify(provider, token)
  t.match(claims, {
    iss: provider.issuer,
    aud: 'mrmat-ts-api-fastify',
    sub: 'test-client',
    client_id: 'test-client',
    scope: `${READ} ${WRITE}`,
    preferred_username: 'test-client-display',
    jti: String,
  })
  t.same(provider.serverErrors, [])
  const iat = claims.iat as number
  t.ok(Math.abs(iat - Date.now() / 1000) < 5, 'issued now')
  t.equal(claims.exp, iat + 300, 'for the default 300 s')
})

t.test('jwt() gives the scopes asked for and drops unknown ones', async (t) => {
  const provider = await startTestProvider(t)
  t.equal(decodeJwt(await provider.jwt({ scope: READ })).scope, READ)
  t.equal(decodeJwt(await provider.jwt({ scope: `${WRITE} openid admin` })).scope, WRITE)
  t.notOk('scope' in decodeJwt(await provider.jwt({ scope: '' })), 'no scope at all')
  t.notOk('scope' in decodeJwt(await provider.jwt({ scope: 'admin' })), 'only unknown scopes')
})

t.test('options and further clients shape the tokens', async (t) => {
  const provider = await startTestProvider(t, {
    audience: 'other-api',
    scopes: ['a', 'b'],
    accessTokenTTL: 60,
    clients: [
      { id: 'reader', secret: 'reader-secret', preferredUsername: 'Reader', scopes: ['a'] },
      { id: 'nameless', secret: 'nameless-secret' },
    ],
  })
  const reader = decodeJwt(await provider.jwt({ client: { id: 'reader', secret: 'reader-secret' } }))
  t.match(reader, { aud: 'other-api', sub: 'reader', client_id: 'reader', scope: 'a', preferred_username: 'Reader' })
  t.equal(reader.exp, (reader.iat ?? 0) + 60)
  const nameless = decodeJwt(await provider.jwt({ client: { id: 'nameless', secret: 'nameless-secret' } }))
  t.equal(nameless.scope, 'a b')
  t.notOk('preferred_username' in nameless, 'a client without a display name gets no preferred_username')
  const elsewhere = decodeJwt(await provider.jwt({ audience: 'someone-else' }))
  t.equal(elsewhere.aud, 'someone-else', 'a real token for another audience')
  await t.rejects(provider.jwt({ client: { id: 'reader', secret: 'wrong' } }), /401.*invalid_client/)
})

t.test('opaque() tokens introspect active for the API client only', async (t) => {
  const provider = await startTestProvider(t)
  const token = await provider.opaque({ scope: READ })
  t.notMatch(token, JWT_SHAPE, 'not a JWT')
  const result = await introspect(provider, token)
  t.match(result, {
    active: true,
    client_id: 'test-client',
    scope: READ,
    aud: 'mrmat-ts-api-fastify',
    iss: provider.issuer,
    token_type: 'Bearer',
    preferred_username: 'test-client-display',
  })
  t.ok(Math.abs((result.exp as number) - (Date.now() / 1000 + 300)) < 5, 'exp is 300 s ahead')
  t.same(await introspect(provider, token, provider.client), { active: false }, 'another client learns nothing')
  t.same(await introspect(provider, 'garbage'), { active: false })
  await provider.revoke(token)
  t.same(await introspect(provider, token), { active: false }, 'revoked')
})

t.test('sign() makes tokens of any shape with the provider\'s keys or others', async (t) => {
  const provider = await startTestProvider(t)
  const now = Math.floor(Date.now() / 1000)
  const real = await verify(provider, await provider.sign({ sub: 'alice', preferred_username: 'alice' }))
  t.match(real, {
    iss: provider.issuer,
    aud: provider.audience,
    sub: 'alice',
    preferred_username: 'alice',
    scope: `${READ} ${WRITE}`,
  })

  const expired = await provider.sign({ iat: now - 600, exp: now - 300 })
  await t.rejects(verify(provider, expired), { code: 'ERR_JWT_EXPIRED' })
  const invalidClaim = (claim: string) => ({ code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim })
  await t.rejects(verify(provider, await provider.sign({ nbf: now + 300 })), invalidClaim('nbf'))
  await t.rejects(verify(provider, await provider.sign({ aud: 'someone-else' })), invalidClaim('aud'))
  t.notOk('exp' in decodeJwt(await provider.sign({ exp: undefined })), 'a claim given as undefined is left out')

  const header = decodeProtectedHeader(await provider.sign({}, { header: { typ: 'JWT', kid: 'made-up' } }))
  t.same(header, { alg: 'RS256', typ: 'JWT', kid: 'made-up' })

  const { privateKey } = await generateKeyPair('RS256')
  const forged = await provider.sign({}, { key: privateKey })
  t.equal(decodeProtectedHeader(forged).kid, provider.kid, 'a key of your own claims the current kid')
  await t.rejects(verify(provider, forged), { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' })
  await t.rejects(provider.sign({}, { key: 'previous' }), /no previous signing key/)
})

t.test('rotateKeys() signs with a new key and keeps the old one published until dropOld', async (t) => {
  const provider = await startTestProvider(t)
  const port = new URL(provider.issuer).port
  const oldKid = provider.kid
  const oldToken = await provider.jwt()
  const oldOpaque = await provider.opaque()

  const newKid = await provider.rotateKeys()
  t.not(newKid, oldKid)
  t.equal(provider.kid, newKid)
  t.equal(new URL(provider.issuer).port, port, 'same port')
  t.same(provider.publicJwks().keys.map((key) => key.kid), [newKid, oldKid])
  t.equal(decodeProtectedHeader(await provider.jwt()).kid, newKid, 'new tokens carry the new kid')
  t.ok(await verify(provider, await provider.jwt()))
  t.ok(await verify(provider, oldToken), 'old tokens still verify')
  t.ok(await verify(provider, await provider.sign({}, { key: 'previous' })))
  t.equal((await introspect(provider, oldOpaque)).active, true, 'issued tokens outlive the rotation')

  const newestKid = await provider.rotateKeys({ dropOld: true })
  t.same(provider.publicJwks().keys.map((key) => key.kid), [newestKid])
  t.same(await (await fetch(`${provider.issuer}/jwks`)).json(), provider.publicJwks())
  await t.rejects(verify(provider, oldToken), { code: 'ERR_JWKS_NO_MATCHING_KEY' })
  const previous = await provider.sign({}, { key: 'previous' })
  t.equal(decodeProtectedHeader(previous).kid, newKid)
  await t.rejects(verify(provider, previous), { code: 'ERR_JWKS_NO_MATCHING_KEY' },
    'the dropped key no longer verifies')
  t.equal(provider.privateJwk('previous').kid, newKid)
  t.ok(provider.privateJwk().d, 'the private JWK has its private part')
})

t.test('stop() refuses connections and start() comes back on the same port with the same keys', async (t) => {
  const provider = await startTestProvider(t)
  const token = await provider.jwt()
  const opaque = await provider.opaque()
  const jwks = provider.publicJwks()
  await fetch(`${provider.issuer}/jwks`)
  await provider.stop()
  await t.rejects(fetch(`${provider.issuer}/jwks`), { cause: { code: 'ECONNREFUSED' } })
  await t.rejects(provider.jwt(), { cause: { code: 'ECONNREFUSED' } })
  await provider.start()
  t.same(await (await fetch(`${provider.issuer}/jwks`)).json(), jwks)
  t.ok(await verify(provider, token))
  t.equal((await introspect(provider, opaque)).active, true)
})

t.test('requests() counts what others ask of each path', async (t) => {
  const provider = await startTestProvider(t)
  await provider.jwt()
  await provider.writeClientSecrets(t.testdir())
  t.equal(provider.requests('/token'), 0, 'the fixture\'s own requests do not count')
  t.equal(provider.requests('/.well-known/openid-configuration'), 0)
  await verify(provider, await provider.jwt())
  t.equal(provider.requests('/.well-known/openid-configuration'), 1)
  t.equal(provider.requests('/jwks'), 1)
  await fetch(`${provider.issuer}/jwks?cache=bust`)
  t.equal(provider.requests('/jwks'), 2, 'by path, whatever the query')
  await introspect(provider, 'garbage')
  t.equal(provider.requests('/token/introspection'), 1)
  provider.resetRequestCounts()
  t.equal(provider.requests('/jwks'), 0)
})

t.test('writeClientSecrets() writes the seed\'s client secrets with reachable endpoints', async (t) => {
  const provider = await startTestProvider(t)
  const path = await provider.writeClientSecrets(t.testdir())
  const { web } = JSON.parse(await readFile(path, 'utf8')) as { web: Record<string, string> }
  t.same(web, {
    client_id: provider.apiClient.id,
    client_secret: provider.apiClient.secret,
    issuer: provider.issuer,
    auth_uri: `${provider.issuer}/auth`,
    token_uri: `${provider.issuer}/token`,
    userinfo_uri: `${provider.issuer}/me`,
    token_introspection_uri: `${provider.issuer}/token/introspection`,
    redirect_uris: [],
  })
  const opaque = await provider.opaque()
  const res = await fetch(web.token_introspection_uri ?? '', {
    method: 'POST',
    body: new URLSearchParams({
      token: opaque,
      client_id: web.client_id ?? '',
      client_secret: web.client_secret ?? '',
    }),
  })
  t.match(await res.json(), { active: true }, 'the written credentials work at the written endpoint')
  t.equal((await fetch(web.token_uri ?? '', { method: 'POST' })).status, 400, 'the token endpoint answers')
})

t.test('two providers differ in port, keys and secrets, and close() leaves nothing listening', async (t) => {
  const first = await startTestProvider(t)
  const second = await startTestProvider(t)
  t.not(first.issuer, second.issuer)
  t.not(first.kid, second.kid)
  t.not(first.apiClient.secret, second.apiClient.secret)
  await t.rejects(verify(first, await second.jwt()), { code: 'ERR_JWKS_NO_MATCHING_KEY' }, 'another provider\'s token')
  const { payload } = await jwtVerify(await second.jwt(), createRemoteJWKSet(new URL(`${second.issuer}/jwks`)))
  t.equal(payload.iss, second.issuer)
  await t.rejects(
    jwtVerify(await second.sign({ iss: first.issuer }), createRemoteJWKSet(new URL(`${first.issuer}/jwks`))),
    { code: 'ERR_JWKS_NO_MATCHING_KEY' },
    'a token from another provider finds no key',
  )
  await first.close()
  await t.rejects(fetch(`${first.issuer}/jwks`), { cause: { code: 'ECONNREFUSED' } })
  await t.rejects(first.start(), /closed/)
})

async function deviceAuthorization(provider: TestProvider, scope: string): Promise<Record<string, string>> {
  const res = await fetch(`${provider.issuer}/device/auth`, {
    method: 'POST',
    body: new URLSearchParams({ client_id: provider.deviceClient.id, scope }),
  })
  if (!res.ok) throw new Error(`device authorization: ${String(res.status)} ${await res.text()}`)
  return await res.json() as Record<string, string>
}

async function deviceToken(provider: TestProvider,
  deviceCode: string): Promise<{ status: number, body: Record<string, string> }> {
  const res = await fetch(`${provider.issuer}/token`, {
    method: 'POST',
    body: new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
      device_code: deviceCode,
      client_id: provider.deviceClient.id,
    }),
  })
  return { status: res.status, body: await res.json() as Record<string, string> }
}

t.test('device flow: a person approves and the device gets a JWT in their name', async (t) => {
  const provider = await startTestProvider(t)
  const authorization = await deviceAuthorization(provider, `openid profile offline_access ${READ}`)
  t.match(authorization, {
    device_code: String,
    user_code: /^\w{4}-\w{4}$/,
    verification_uri: `${provider.issuer}/device`,
    expires_in: Number,
  })
  const deviceCode = authorization.device_code ?? ''
  t.match(await deviceToken(provider, deviceCode), { status: 400, body: { error: 'authorization_pending' } })

  await approveDevice(provider, authorization.user_code ?? '', 'alice')
  const { status, body } = await deviceToken(provider, authorization.device_code ?? '')
  t.equal(status, 200)
  t.match(body, {
    token_type: 'Bearer',
    access_token: JWT_SHAPE,
    id_token: JWT_SHAPE,
    refresh_token: String,
    scope: String,
  })
  const claims = await verify(provider, body.access_token ?? '')
  t.match(claims, {
    sub: 'alice',
    preferred_username: 'alice',
    client_id: 'mrmat-cli',
    scope: READ,
    aud: provider.audience,
  })
  t.match(decodeJwt(body.id_token ?? ''), { sub: 'alice', aud: 'mrmat-cli' })

  const refreshed = await fetch(`${provider.issuer}/token`, {
    method: 'POST',
    body: new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: body.refresh_token ?? '',
      client_id: provider.deviceClient.id,
    }),
  })
  t.equal(refreshed.status, 200, 'the refresh token works')
  const { access_token: renewed } = await refreshed.json() as { access_token: string }
  t.match(await verify(provider, renewed), { sub: 'alice', preferred_username: 'alice', scope: READ })
  t.match(await deviceToken(provider, deviceCode), { status: 400, body: { error: 'invalid_grant' } },
    'a device code is used once')
  t.same(provider.serverErrors, [])
})

t.test('device flow: a person who aborts denies the device', async (t) => {
  const provider = await startTestProvider(t)
  const authorization = await deviceAuthorization(provider, `openid ${READ}`)
  await denyDevice(provider, authorization.user_code ?? '')
  const denied = await deviceToken(provider, authorization.device_code ?? '')
  t.match(denied, { status: 400, body: { error: 'access_denied' } })
  await t.rejects(approveDevice(provider, 'WRONG-CODE', 'alice'), /did not complete|NotFoundError/)
})
