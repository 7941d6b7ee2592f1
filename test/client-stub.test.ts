import { readdirSync } from 'node:fs'
import t from 'tap'
import { AuthError } from '#src/client/errors.js'
import { discover, pollForTokens, type DeviceAuthorization } from '#src/client/oidc.js'
import { GRANTED, PENDING, SLOW_DOWN, startStubProvider, type Reply } from './fixtures/stub-provider.js'
import { clientHome, lines, runHere } from './helpers/client.js'
import { freePorts } from './helpers/process.js'

// Nothing listens there: login never contacts the API, the URL only keys the cache.
const SERVER = 'http://127.0.0.1:9'
const http = { timeoutMs: 5_000, debug: () => undefined }

function config(discoveryUrl: string): Record<string, string> {
  return { client_id: 'stub-client', discovery_url: discoveryUrl, server: SERVER }
}

t.test('slow_down: the client waits longer from then on, scaled down by --poll-interval', async (t) => {
  const stub = await startStubProvider(t, { token: [PENDING, SLOW_DOWN, PENDING, GRANTED] })
  const home = clientHome(t, config(stub.discoveryUrl))
  const result = await runHere(['login', '--poll-interval', '0.25'], home.env)
  t.equal(result.code, 0, result.stderr)
  t.match(result.stdout, `To sign in, open ${stub.issuer}/device and enter the code WDJB-MJHT\n`
    + `or open ${stub.issuer}/device?user_code=WDJB-MJHT\nwithin 10 minutes.\n`)
  t.match(result.stdout, 'Logged in to http://127.0.0.1:9 as stub-user.\n')
  t.match(lines(result.stderr), [
    'Waiting for the sign-in to complete…',
    'The identity provider asked to poll less often: every 0.5 s now',
  ])

  const [device, ...polls] = stub.requests
  t.equal(device?.path, '/device/auth')
  t.same(polls.map((request) => request.form.get('grant_type')),
    Array(4).fill('urn:ietf:params:oauth:grant-type:device_code'))
  t.same(polls.map((request) => [request.form.get('client_id'), request.form.get('device_code')]),
    Array(4).fill(['stub-client', 'stub-device-code']))
  const times = [device, ...polls].map((request) => request?.at ?? 0)
  const gaps = times.slice(1).map((at, i) => at - (times[i] ?? 0))
  // Lower bounds only: a loaded machine can stretch a wait, never shorten it.
  t.ok((gaps[0] ?? 0) >= 240, `waits the interval before the first poll (${String(gaps[0])} ms)`)
  t.ok((gaps[1] ?? 0) >= 240, `and after authorization_pending (${String(gaps[1])} ms)`)
  t.ok((gaps[2] ?? 0) >= 490, `twice as long after slow_down (${String(gaps[2])} ms)`)
  t.ok((gaps[3] ?? 0) >= 490, `and from then on (${String(gaps[3])} ms)`)
  t.equal(readdirSync(home.cacheDir).length, 1, 'the tokens are cached')
})

t.test('a terminal gets a spinner on stderr; --quiet prints neither spinner nor notes', async (t) => {
  const stub = await startStubProvider(t, { token: [PENDING, SLOW_DOWN, GRANTED] })
  const home = clientHome(t, config(stub.discoveryUrl))
  const tty = await runHere(['login', '--poll-interval', '0.05'], home.env, { tty: true })
  t.equal(tty.code, 0)
  const CLEAR = '\r\u001b[2K'
  t.ok(tty.stderr.startsWith(`${CLEAR}⠋ Waiting for the sign-in to complete…${CLEAR}⠙ `), 'draws in place')
  t.ok(tty.stderr.includes(' The identity provider asked to poll less often: every 0.1 s now'), tty.stderr)
  t.notOk(tty.stderr.includes('\n'), 'never a new line')
  t.ok(tty.stderr.endsWith(CLEAR), 'and clears its line when done')
  t.notMatch(tty.stdout, /\r/, 'stdout stays plain')
  const quiet = await runHere(['login', '--poll-interval', '0.05', '-q'], home.env, { tty: true })
  t.equal(quiet.code, 0)
  t.equal(quiet.stderr, '')
  t.match(quiet.stdout, /enter the code WDJB-MJHT/, 'the code is still shown: without it no one can sign in')
})

t.test('login --json prints the prompt and the outcome as JSON lines', async (t) => {
  const stub = await startStubProvider(t)
  const home = clientHome(t, config(stub.discoveryUrl))
  const { code, stdout } = await runHere(['login', '--poll-interval', '0.01', '--json'], home.env)
  t.equal(code, 0)
  const [prompt, outcome] = lines(stdout).map((line) => JSON.parse(line) as unknown)
  t.same(prompt, {
    verification_uri: `${stub.issuer}/device`,
    user_code: 'WDJB-MJHT',
    verification_uri_complete: `${stub.issuer}/device?user_code=WDJB-MJHT`,
    expires_in: 600,
  })
  t.match(outcome, { logged_in: true, user: 'stub-user', server: SERVER, expires_at: String })
})

t.test('expired_token and access_denied end the login with exit 3 and one line', async (t) => {
  const cases: { reply: Reply, message: RegExp }[] = [
    { reply: [400, { error: 'expired_token' }], message: /^mrmat-ts-api-fastify-client: the sign-in code expired before sign-in was completed: run login again$/ },
    { reply: [400, { error: 'access_denied' }], message: /^mrmat-ts-api-fastify-client: the sign-in was denied at the identity provider \(access_denied\)$/ },
    { reply: [400, { error: 'invalid_grant', error_description: 'grant request is invalid\nsecond line' }], message: /^mrmat-ts-api-fastify-client: the identity provider says: invalid_grant \(grant request is invalid second line\)$/ },
    { reply: [502, '<html>Bad gateway</html>'], message: /^mrmat-ts-api-fastify-client: the identity provider at http:\/\/127\.0\.0\.1:\d+ answered 502 without tokens or an OAuth error$/ },
    { reply: [200, { access_token: 'x', token_type: 'mac' }], message: /issued a token of type "mac", not Bearer$/ },
  ]
  for (const { reply, message } of cases) {
    const stub = await startStubProvider(t, { token: [PENDING, reply] })
    const home = clientHome(t, config(stub.discoveryUrl))
    const { code, stderr } = await runHere(['login', '--poll-interval', '0.01'], home.env)
    t.equal(code, reply[0] === 400 ? 3 : 1, `${JSON.stringify(reply)}: exit code`)
    t.match(lines(stderr).slice(1), [message], `${JSON.stringify(reply)}: one line after the progress line`)
  }
})

t.test('provider problems before polling are one line each', async (t) => {
  const [closed = 0] = await freePorts(1)
  const invalidClient = await startStubProvider(t, {
    device: [401, { error: 'invalid_client', error_description: 'client authentication failed' }],
  })
  const noDevice = await startStubProvider(t, { discovery: { device_authorization_endpoint: undefined } })
  const noCode = await startStubProvider(t, { device: [200, { user_code: 'X' }] })
  const noToken = await startStubProvider(t, { discovery: { token_endpoint: undefined } })
  const badEndpoint = await startStubProvider(t, { discovery: { token_endpoint: 'not a url' } })
  const cases: { discovery: string, code: number, message: RegExp }[] = [
    { discovery: invalidClient.discoveryUrl, code: 3, message: /^the identity provider says: invalid_client \(client authentication failed\)$/ },
    { discovery: noDevice.discoveryUrl, code: 3, message: /offers no device authorization \(no device_authorization_endpoint\)$/ },
    { discovery: noCode.discoveryUrl, code: 1, message: /answered 200 without a device_code, user_code and verification_uri$/ },
    { discovery: noToken.discoveryUrl, code: 1, message: /^the discovery document at http:\/\/.+ names no token_endpoint$/ },
    { discovery: badEndpoint.discoveryUrl, code: 1, message: /has a token_endpoint that is not a URL$/ },
    { discovery: `${noToken.issuer}/nowhere/.well-known/openid-configuration`, code: 1, message: /^the identity provider answered 404 for its discovery document at / },
    { discovery: `http://127.0.0.1:${String(closed)}/realms/x`, code: 1, message: new RegExp(`^cannot reach the identity provider at http://127\\.0\\.0\\.1:${String(closed)}/realms/x/\\.well-known/openid-configuration: connection refused$`) },
  ]
  for (const { discovery, code, message } of cases) {
    const home = clientHome(t, config(discovery))
    const result = await runHere(['login', '--poll-interval', '0.01'], home.env)
    t.equal(result.code, code, `${message.source}: exit ${String(code)}`)
    t.equal(lines(result.stderr).length, 1, result.stderr)
    t.match(result.stderr.trimEnd().replace(/^mrmat-ts-api-fastify-client: /, ''), message)
  }
})

t.test('the poll schedule follows RFC 8628 when --poll-interval is not given', async (t) => {
  const device = (interval?: number, expiresIn = 600): DeviceAuthorization => ({
    deviceCode: 'stub-device-code',
    userCode: 'X',
    verificationUri: 'x',
    verificationUriComplete: undefined,
    expiresIn,
    interval,
  })
  /** The sleeps asked for, on a clock that only sleeping moves. */
  const schedule = async (script: Reply[], authorization: DeviceAuthorization, pollInterval?: number) => {
    const stub = await startStubProvider(t, { token: script })
    const discovery = await discover(new URL(stub.discoveryUrl), http)
    const sleeps: number[] = []
    let clock = 0
    const outcome = await pollForTokens(discovery, { id: 'stub-client', secret: undefined }, authorization, http, {
      pollInterval,
      sleep: async (ms) => { sleeps.push(ms); clock += ms },
      now: () => clock,
    }).then(() => 'granted', (error: unknown) => error)
    return { sleeps, outcome, polls: stub.tokenRequests().length }
  }
  t.same(await schedule([PENDING, SLOW_DOWN, SLOW_DOWN, GRANTED], device()),
    { sleeps: [5000, 5000, 10000, 15000], outcome: 'granted', polls: 4 }, '5 s without an interval, +5 s per slow_down')
  t.same((await schedule([PENDING, SLOW_DOWN, GRANTED], device(7))).sleeps, [7000, 7000, 12000],
    'the provider\'s interval')
  t.same((await schedule([SLOW_DOWN, GRANTED], device(7), 2)).sleeps, [2000, 4000],
    '--poll-interval replaces it and caps the slow_down step')
  t.same((await schedule([SLOW_DOWN, GRANTED], device(undefined), 10)).sleeps, [10000, 15000],
    'a long --poll-interval keeps the 5 s step')
  const expired = await schedule([PENDING], device(undefined, 12))
  t.same([expired.sleeps, expired.polls], [[5000, 5000, 5000], 2], 'no poll once the device code has expired')
  t.type(expired.outcome, AuthError)
  t.match(expired.outcome, { message: /expired before sign-in was completed/, exitCode: 3 })
  const secret = await startStubProvider(t, { token: [GRANTED] })
  const discovery = await discover(new URL(secret.discoveryUrl), http)
  const noWait = { sleep: async () => undefined }
  await pollForTokens(discovery, { id: 'confidential', secret: 'p@ss word' }, device(), http, noWait)
  const basic = `Basic ${Buffer.from('confidential:p%40ss+word').toString('base64')}`
  t.equal(secret.tokenRequests()[0]?.authorization, basic, 'a secret goes in Basic, form-encoded first')
  t.notOk(secret.tokenRequests()[0]?.form.has('client_id'))
  const post = await startStubProvider(t, {
    token: [GRANTED],
    discovery: { token_endpoint_auth_methods_supported: ['client_secret_post'] },
  })
  const postDiscovery = await discover(new URL(post.discoveryUrl), http)
  await pollForTokens(postDiscovery, { id: 'confidential', secret: 's' }, device(), http, noWait)
  const [request] = post.tokenRequests()
  t.same([request?.form.get('client_id'), request?.form.get('client_secret'), request?.authorization],
    ['confidential', 's', undefined], 'in the form when the provider only takes that')
  await t.rejects(discover(new URL(`${post.issuer}/token`), http), { message: /names no token_endpoint/, exitCode: 1 }, 'a discovery URL that answers something else')
})
