import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { generateKeyPair } from 'jose'
import t from 'tap'
import type { CachedTokens } from '#src/client/token-cache.js'
import { denyDevice, deviceTokens } from './fixtures/oidc-provider.js'
import { READ_SCOPE, WRITE_SCOPE } from './helpers/auth.js'
import {
  CLIENT_NAME, clientHome, lines, runClient, runHere, seedCache, startHere, startStack, writeConfig,
} from './helpers/client.js'

const PERSON_SCOPE = `openid profile offline_access ${READ_SCOPE} ${WRITE_SCOPE}`
const LOG_IN_AGAIN = "run 'mrmat-ts-api-fastify-client login' to log in again"
const readCache = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as CachedTokens
const longAgo = () => Math.floor(Date.now() / 1000) - 60

t.test('a person who denies the device: exit 3, one line, nothing cached', async (t) => {
  const stack = await startStack(t)
  const home = clientHome(t, stack.config)
  const login = startHere(['login', '--poll-interval', '0.1'], home.env)
  const [, userCode = ''] = await login.waitForLine(/enter the code (\S+)$/)
  await denyDevice(stack.provider, userCode)
  const { code, stderr } = await login.finished
  t.equal(code, 3)
  t.same(lines(stderr), [
    'Waiting for the sign-in to complete…',
    `${CLIENT_NAME}: the sign-in was denied at the identity provider (access_denied)`,
  ])
  t.notOk(existsSync(home.cacheDir), 'no tokens cached')
})

t.test('an expired access token is renewed; a failed renewal asks to log in again', async (t) => {
  const stack = await startStack(t)
  const home = clientHome(t, stack.config)
  const tokens = await deviceTokens(stack.provider, 'dave', { scope: PERSON_SCOPE })
  const path = seedCache(home, stack, tokens, { expires_at: longAgo() })
  stack.provider.resetRequestCounts()

  const renewed = await runHere(['greeting', 'v3', '--debug'], home.env)
  t.equal(renewed.code, 0, renewed.stderr)
  t.equal(renewed.stdout, 'Hello dave\n')
  t.match(renewed.stderr, /^debug: the access token had expired and was renewed$/m)
  t.equal(stack.provider.requests('/token'), 1, 'one refresh')
  const cached = readCache(path)
  t.not(cached.access_token, tokens.access_token, 'a new access token is cached')
  t.ok((cached.expires_at ?? 0) > Date.now() / 1000 + 200, 'valid for the provider\'s 300 s')
  t.ok(cached.refresh_token, 'with a refresh token')

  const again = await runHere(['greeting', 'v3'], home.env)
  t.equal(again.stdout, 'Hello dave\n')
  t.equal(stack.provider.requests('/token'), 1, 'a fresh token is used as it is')

  const expired = (refreshToken: string | null): string =>
    JSON.stringify({ ...readCache(path), expires_at: longAgo(), refresh_token: refreshToken })
  writeFileSync(path, expired('not-a-refresh-token'))
  // As a process: the exit code of an authentication failure.
  const failed = await runClient(t, ['greeting', 'v3'], home.env)
  t.equal(failed.code, 3, 'a failed renewal: exit 3')
  t.equal(failed.stdout, '')
  t.same(lines(failed.stderr), [
    `${CLIENT_NAME}: the login to ${stack.server} has expired and could not be renewed`
      + ` (the identity provider says: invalid_grant (grant request is invalid)): ${LOG_IN_AGAIN}`,
  ])

  writeFileSync(path, expired(null))
  t.match(lines((await runHere(['greeting', 'v3'], home.env)).stderr),
    [`the login to ${stack.server} has expired: ${LOG_IN_AGAIN}`], 'no refresh token: log in again')
})

t.test('a damaged or missing cache is exit 3 with one line, never a stack trace', async (t) => {
  const stack = await startStack(t)
  const home = clientHome(t, stack.config)
  const path = seedCache(home, stack, { access_token: 'x' })
  const cases: { content: string, reason: string }[] = [
    { content: '{"access_token": "tru', reason: 'not JSON' },
    { content: '[]', reason: 'not a JSON object' },
    { content: JSON.stringify({ ...readCache(path), access_token: 42 }), reason: 'access_token is missing or wrong' },
    { content: JSON.stringify({ ...readCache(path), version: 2 }), reason: 'version is missing or wrong' },
  ]
  for (const { content, reason } of cases) {
    writeFileSync(path, content)
    const { code, stdout, stderr } = await runHere(['resource', 'list'], home.env)
    t.equal(code, 3, `${reason}: exit 3`)
    t.equal(stdout, '')
    t.same(lines(stderr), [`${CLIENT_NAME}: the token cache ${path} is damaged (${reason}); ${LOG_IN_AGAIN}`])
  }
  // status says why the cache is of no use, rather than that nobody ever logged in.
  const status = await runHere(['status'], home.env)
  t.equal(status.code, 3)
  t.match(lines(status.stderr), [new RegExp(`^${CLIENT_NAME}: not logged in( to \\S+)?: `
    + `the token cache ${path} is damaged \\(version is missing or wrong\\); ${LOG_IN_AGAIN}$`)])
  t.equal(lines(status.stderr).length, 1, 'one line')
  const logout = await runHere(['logout'], home.env)
  t.same([logout.code, logout.stdout], [0, `Logged out of ${stack.server}.\n`], 'logout removes even a damaged cache')
  t.notOk(existsSync(path))
  const { code, stderr } = await runHere(['greeting', 'v3'], home.env)
  t.equal(code, 3)
  t.same(lines(stderr), [`${CLIENT_NAME}: not logged in to ${stack.server}: run '${CLIENT_NAME} login' first`])
})

t.test('logout removes the cache and revokes the refresh token', async (t) => {
  const stack = await startStack(t)
  const home = clientHome(t, stack.config)
  const tokens = await deviceTokens(stack.provider, 'erin', { scope: PERSON_SCOPE })
  const path = seedCache(home, stack, tokens)
  const out = await runHere(['logout', '--json'], home.env)
  t.same([out.code, JSON.parse(out.stdout), out.stderr], [0, { logged_out: true, server: stack.server }, ''])
  t.notOk(existsSync(path), 'the cache file is gone')
  const refresh = await fetch(`${stack.provider.issuer}/token`, {
    method: 'POST',
    body: new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: tokens.refresh_token ?? '',
      client_id: stack.provider.deviceClient.id,
    }),
  })
  t.match([refresh.status, await refresh.json()], [400, { error: 'invalid_grant' }],
    'the refresh token no longer works')
  t.equal((await runHere(['logout'], home.env)).stdout, `Not logged in to ${stack.server}.\n`, 'twice is fine')

  seedCache(home, stack, tokens)
  await stack.provider.stop()
  const offline = await runHere(['logout'], home.env)
  t.equal(offline.code, 0, 'the provider being down does not stop a logout')
  t.match(lines(offline.stderr), [/^The refresh token could not be revoked \(cannot reach the identity provider at .+: connection refused\); it stays valid until it expires\.$/])
  t.notOk(existsSync(path))
})

t.test('a token the API refuses (401) is exit 3 with the problem detail', async (t) => {
  const stack = await startStack(t)
  const home = clientHome(t, stack.config)
  const { privateKey } = await generateKeyPair('RS256')
  seedCache(home, stack, { access_token: await stack.provider.sign({}, { key: privateKey }) })
  const { code, stderr } = await runHere(['resource', 'list'], home.env)
  t.equal(code, 3)
  const refused = `^${CLIENT_NAME}: the server says: 401 Invalid token: The token is invalid: .+`
    + ' \\(request id [\\w-]+\\)'
  t.match(lines(stderr), [new RegExp(`${refused}; ${LOG_IN_AGAIN}$`)])
})

t.test('login --client-credentials: the client greets as itself, and renews with its secret', async (t) => {
  const stack = await startStack(t)
  const { client } = stack.provider
  const home = clientHome(t, { ...stack.config, client_id: client.id, client_secret: client.secret })
  const login = await runHere(['login', '--client-credentials'], home.env)
  t.same([login.code, login.stdout, login.stderr], [0, `Logged in to ${stack.server} as test-client-display.\n`, ''])
  t.equal((await runHere(['greeting', 'v3'], home.env)).stdout, 'Hello test-client-display\n')
  const created = await runHere(['resource', 'create', 'automated', '--json'], home.env)
  t.match(JSON.parse(created.stdout), { owner: { subject: 'test-client', name: 'test-client-display' } })

  const asClient = { ...stack, config: { ...stack.config, client_id: client.id } }
  const stale = { grant: 'client_credentials', expires_at: longAgo() } as const
  const path = seedCache(home, asClient, { access_token: 'stale' }, stale)
  t.equal((await runHere(['greeting', 'v3'], home.env)).stdout, 'Hello test-client-display\n',
    'an expired token is replaced through the client credentials again')
  t.not(readCache(path).access_token, 'stale')

  writeConfig(home.configFile, { ...stack.config, client_id: client.id })
  const missing = await runHere(['login', '--client-credentials'], home.env)
  t.equal(missing.code, 2)
  t.match(lines(missing.stderr), [/^mrmat-ts-api-fastify-client: login --client-credentials needs a client secret: set --client-secret, MRMAT_CLIENT_SECRET or "client_secret" in .+client\.json$/, /--help/])
  const wrong = await runHere(['login', '--client-credentials', '--client-secret', 'wrong'], home.env)
  t.equal(wrong.code, 3, 'a wrong secret: exit 3')
  t.same(lines(wrong.stderr),
    [`${CLIENT_NAME}: the identity provider says: invalid_client (client authentication failed)`])
})
