import { chmodSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { cacheFile, writeCache, type CachedTokens } from '#src/client/token-cache.js'
import { approveDevice, deviceTokens } from './fixtures/oidc-provider.js'
import { READ_SCOPE, WRITE_SCOPE } from './helpers/auth.js'
import {
  CLIENT_NAME, clientHome, lines, runClient, runHere, seedCache, startHere, startStack,
} from './helpers/client.js'

const PERSON_SCOPE = `openid profile offline_access ${READ_SCOPE} ${WRITE_SCOPE}`
const longAgo = () => Math.floor(Date.now() / 1000) - 60
const readCache = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as CachedTokens

t.test('a login with flags is remembered for its server: --server alone, or nothing, finds it; logout forgets',
  async (t) => {
    const stack = await startStack(t)
    const home = clientHome(t)
    const { server, discovery_url: discoveryUrl, client_id: clientId } = stack.config
    const login = startHere([
      'login', '--server', server, '--discovery-url', discoveryUrl, '--client-id', clientId, '--poll-interval', '0.1',
    ], home.env)
    const [, userCode = ''] = await login.waitForLine(/enter the code (\S+)$/)
    await approveDevice(stack.provider, userCode, 'alice')
    const loggedIn = await login.finished
    t.equal(loggedIn.code, 0, loggedIn.stderr)

    const byServer = await runHere(['greeting', 'v3', '--server', server], home.env)
    t.same([byServer.code, byServer.stdout, byServer.stderr], [0, 'Hello alice\n', ''], '--server alone')
    const alone = await runClient(t, ['resource', 'create', 'remembered'], home.env)
    t.same([alone.code, alone.stderr], [0, ''], 'no setting at all: the one login there is')
    t.match(alone.stdout, /^Created resource \d+: remembered\n$/)

    const status = await runHere(['status'], home.env)
    t.equal(status.code, 0)
    t.match(lines(status.stdout), [new RegExp(`^Logged in to ${server} as alice \\(client ${clientId}\\) with scopes `
      + `${READ_SCOPE} ${WRITE_SCOPE}, until \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z$`)])
    const whoami = await runHere(['whoami', '--json', '--server', server], home.env)
    const [entry] = (JSON.parse(whoami.stdout) as { logins: Record<string, unknown>[] }).logins
    t.match(entry, {
      server, user: 'alice', client_id: clientId, discovery_url: discoveryUrl, expired: false, renewable: true,
      scopes: [READ_SCOPE, WRITE_SCOPE],
    })
    t.ok(Date.parse(String(entry?.expires_at)) > Date.now(), 'until a time to come')
    t.notMatch(status.stdout + whoami.stdout, /eyJ/, 'no token is printed')

    // A second login elsewhere: with no server named, the client cannot choose, and says so.
    const elsewhere = cacheFile(home.env, {
      server: new URL('http://127.0.0.1:9/'), discoveryUrl: new URL(discoveryUrl), clientId,
    })
    writeCache(elsewhere, { ...readCache(join(home.cacheDir, readdirSync(home.cacheDir)[0] ?? '')),
      server: 'http://127.0.0.1:9/', user: 'bob' })
    const ambiguous = await runHere(['greeting', 'v3'], home.env)
    t.equal(ambiguous.code, 2)
    const both = ['http://127.0.0.1:9', server].sort().join(', ')
    t.match(lines(ambiguous.stderr)[0], `${CLIENT_NAME}: 2 remembered logins fit (${both}): name the server`)
    t.equal((await runHere(['greeting', 'v3', '--server', server], home.env)).stdout, 'Hello alice\n')
    t.equal(lines((await runHere(['status'], home.env)).stdout).length, 2, 'status lists both')

    const logout = await runHere(['logout', '--server', server], home.env)
    t.same([logout.code, logout.stdout], [0, `Logged out of ${server}.\n`])
    const forgotten = await runHere(['greeting', 'v3', '--server', server], home.env)
    t.equal(forgotten.code, 2, 'forgotten: the provider must be named again')
    t.match(lines(forgotten.stderr)[0], /no discovery URL is configured/)
    const statusAfter = await runHere(['status', '--server', server], home.env)
    t.same([statusAfter.code, lines(statusAfter.stderr)],
      [3, [`${CLIENT_NAME}: not logged in to ${server}: run '${CLIENT_NAME} login' first`]])
  })

t.test('a client-credentials login remembers the client id but never the secret', async (t) => {
  const stack = await startStack(t)
  const home = clientHome(t)
  const { client } = stack.provider
  const login = await runHere(['login', '--client-credentials', '--server', stack.server,
    '--discovery-url', stack.config.discovery_url, '--client-id', client.id, '--client-secret', client.secret],
  home.env)
  t.equal(login.code, 0, login.stderr)
  const [file = ''] = readdirSync(home.cacheDir)
  const text = readFileSync(join(home.cacheDir, file), 'utf8')
  t.match(JSON.parse(text), { client_id: client.id, discovery_url: stack.config.discovery_url })
  t.notOk(text.includes(client.secret), 'the secret is not in the cache')
  t.equal((await runHere(['greeting', 'v3', '--server', stack.server], home.env)).stdout,
    'Hello test-client-display\n')
})

t.test('two commands that find the token expired at once renew it once, and the session survives', async (t) => {
  const stack = await startStack(t)
  const home = clientHome(t, stack.config)
  const tokens = await deviceTokens(stack.provider, 'dave', { scope: PERSON_SCOPE })
  const path = seedCache(home, stack, tokens, { expires_at: longAgo() })
  stack.provider.resetRequestCounts()
  // In one process the three are sure to overlap: each reads the expired cache before any renewal is answered. The
  // provider rotates refresh tokens and ends the whole grant when a replaced one is used again, so without the lock
  // two of them would fail and the third's new tokens would be revoked.
  const results = await Promise.all([1, 2, 3].map(async () => runHere(['greeting', 'v3'], home.env)))
  t.same(results.map((r) => [r.code, r.stdout]), [[0, 'Hello dave\n'], [0, 'Hello dave\n'], [0, 'Hello dave\n']],
    results.map((r) => r.stderr).join(''))
  t.equal(stack.provider.requests('/token'), 1, 'one renewal')
  const renewed = readCache(path)
  t.not(renewed.refresh_token, tokens.refresh_token, 'the refresh token was rotated')

  writeFileSync(path, JSON.stringify({ ...renewed, expires_at: longAgo() }), { mode: 0o600 })
  // A lock a command left behind when it died is not waited on for ever.
  writeFileSync(`${path}.lock`, '')
  const old = new Date(Date.now() - 10 * 60_000)
  utimesSync(`${path}.lock`, old, old)
  const again = await runHere(['greeting', 'v3'], home.env)
  t.same([again.code, again.stdout], [0, 'Hello dave\n'], 'the rotated refresh token works: the session survived')
  t.equal(stack.provider.requests('/token'), 2)
  t.notOk(readdirSync(home.cacheDir).some((name) => name.endsWith('.lock')), 'no lock is left behind')
})

t.test('a token cache others can read is refused, its tokens unused', async (t) => {
  const stack = await startStack(t)
  const home = clientHome(t, stack.config)
  const tokens = await deviceTokens(stack.provider, 'mallory', { scope: PERSON_SCOPE })
  const path = seedCache(home, stack, tokens)
  chmodSync(path, 0o644)
  stack.provider.resetRequestCounts()
  const refused = await runClient(t, ['greeting', 'v3'], home.env)
  t.equal(refused.code, 3)
  t.equal(refused.stdout, '')
  t.same(lines(refused.stderr), [`${CLIENT_NAME}: the token cache ${path} can be read by others (mode 0644), so its `
    + `tokens are not used; run '${CLIENT_NAME} login' to log in again (the new cache is the user's alone)`])
  t.notOk(refused.stderr.includes(tokens.access_token), 'the token is not printed')
  t.equal(stack.provider.requests('/token'), 0, 'nor renewed')
})
