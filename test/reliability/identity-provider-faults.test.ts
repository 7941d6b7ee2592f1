import t, { type Test } from 'tap'
import { freshSqlite } from '../fixtures/databases.js'
import { startTestProvider, type GarbageAnswer, type TestProvider } from '../fixtures/oidc-provider.js'
import { Problems } from '../helpers/auth.js'
import { startCli } from '../helpers/cli.js'
import { send, type Answer } from '../helpers/http.js'
import { Load, type LoadResult } from '../helpers/load.js'
import { logLines, type Child } from '../helpers/process.js'
import { sized } from '../helpers/reliability.js'
import { pollUntil } from '../helpers/wait.js'

// The identity provider misbehaving under a running server (the provider merely down is test/auth-provider-outage):
// slow past the fetch timeout, or answering garbage. Requests that need it get a quick 503 problem, requests that do
// not are served as before, nothing crashes, the log says what is wrong, and the server recovers once it is mended.

const OPEN = '/api/greeting/v1/'
const GREETING = '/api/greeting/v3/'
const DISCOVERY = '/.well-known/openid-configuration'
const JWKS = '/jwks'
/** The server's fetch timeout (DEFAULT_TIMINGS.fetchTimeout), and what a 503 may take beyond it on a busy machine. */
const FETCH_TIMEOUT_MS = 5_000
const SLACK_MS = 2_000
const LOAD_S = sized(3, 10)
/** A rate one process answers easily on a 2-core machine: the latency measured is the event loop's, not a queue's. */
const RATE = 500

async function serve(t: Test, provider: TestProvider): Promise<{ cli: Child, url: string }> {
  const db = freshSqlite(t)
  return startCli(t, ['--host', '127.0.0.1', '--port', '0', '--access-log', 'false', '--db', db.url,
    '--issuer', provider.issuer, '--audience', provider.audience], { cwd: t.testdir() })
}

async function openLoad(t: Test, url: string): Promise<LoadResult> {
  return new Load(t, `${url}${OPEN}`, { connections: 20, seconds: LOAD_S, overallRate: RATE }).result()
}

function warnings(cli: Child, message: string): Record<string, unknown>[] {
  return logLines(cli.stdout).filter((line) => line.level === 40 && line.msg === message)
}

/** Asks greeting v3 with the token until it answers other than `status` (a fault not yet seen, or not yet mended). */
async function greetingOtherThan(url: string, token: string, status: number, ms: number,
  what: string): Promise<Answer> {
  return pollUntil(async () => {
    const answer = await send(url, GREETING, { token })
    return answer.status !== status && answer
  }, ms, what)
}

function assertUnavailable(t: Test, answer: Answer, what: string): void {
  t.equal(answer.status, 503, `${what}: 503`)
  t.match(answer.headers['content-type'], /^application\/problem\+json/, `${what}: a problem`)
  t.match(answer.body, { type: Problems.unavailable, status: 503 }, `${what}: the provider is unavailable`)
  t.match(answer.headers['retry-after'], /^\d+$/, `${what}: Retry-After`)
}

t.test('a slow provider: a quick 503 for who needs it, greeting v1 served as before', async (t) => {
  const provider = await startTestProvider(t)
  const { cli, url } = await serve(t, provider)
  await cli.waitForLine(/identity provider discovered/)
  const before = await openLoad(t, url)

  provider.fault(JWKS, { delayMs: 60_000 })
  const token = await provider.jwt()
  const during = openLoad(t, url)
  // 50 callers at once, each with a token whose key is not known yet: every one waits on the key set that hangs.
  const started = performance.now()
  const answers = await Promise.all(Array.from({ length: 50 }, async () => {
    const answer = await send(url, GREETING, { token, timeout: 30_000 })
    return { answer, ms: performance.now() - started }
  }))
  const loaded = await during
  const slowest = Math.max(...answers.map((a) => a.ms))
  t.comment(`greeting v1 at ${String(RATE)} req/s: p99 ${String(before.latency.p99)} ms before, ` +
    `${String(loaded.latency.p99)} ms while 50 requests waited on a provider that does not answer; ` +
    `those got ${[...new Set(answers.map((a) => a.answer.status))].join(', ')}, ` +
    `the slowest after ${slowest.toFixed(0)} ms`)

  for (const { answer } of answers.slice(0, 3)) assertUnavailable(t, answer, 'a token while the key set hangs')
  t.same(answers.filter((a) => a.answer.status !== 503).map((a) => a.answer.status), [], 'all 50 got 503')
  t.ok(slowest < FETCH_TIMEOUT_MS + SLACK_MS, `within the fetch timeout (${slowest.toFixed(0)} ms)`)
  t.equal(loaded.non2xx + loaded.errors + loaded.timeouts, 0, 'greeting v1: every request answered 200 meanwhile')
  t.ok(loaded.latency.p99 <= 2 * before.latency.p99 + 50,
    `greeting v1's p99 unaffected (${String(loaded.latency.p99)} ms, ${String(before.latency.p99)} ms before)`)
  // The log line is written as the 503 goes out, and may reach the test's pipe just after the answer.
  const why = await pollUntil(() => warnings(cli, 'cannot fetch the identity provider\'s key set')[0], 5_000,
    'a warning about the key set')
  t.match(why, { err: { message: /timeout/i } }, 'the log says the key set timed out')

  provider.fault(JWKS, undefined)
  const mended = await greetingOtherThan(url, token, 503, 10_000, 'an answer other than 503')
  t.equal(mended.status, 200, 'once the provider answers again, the same token passes')
  t.ok(cli.running, 'the server never stopped')
})

const GARBAGE: Record<string, GarbageAnswer> = {
  'truncated JSON': { status: 200, body: '{"keys": [{"kty": "RSA", "kid": ' },
  'an HTML page': { status: 200, body: '<!DOCTYPE html><title>Maintenance</title>', contentType: 'text/html' },
  'keys of the wrong shape': { status: 200, body: '{"keys": "none today"}' },
  'a key without its parts': { status: 200, body: '{"keys": [{"kty": "RSA"}, null, 7]}' },
  'a server error': { status: 500, body: '{"error": "server_error"}' },
}

t.test('a key set of garbage: no crash, a 503, a clear log line, recovery once mended', async (t) => {
  const provider = await startTestProvider(t)
  const { cli, url } = await serve(t, provider)
  await cli.waitForLine(/identity provider discovered/)
  for (const [what, garbage] of Object.entries(GARBAGE)) {
    provider.fault(JWKS, garbage)
    // A new key each time: a kid the server has not seen makes it fetch the key set again (once a second at most).
    await provider.rotateKeys()
    const token = await provider.jwt()
    const answer = await greetingOtherThan(url, token, 401, 5_000, 'an answer once the key set was fetched')
    assertUnavailable(t, answer, what)
    t.notOk(answer.text.includes(garbage.body.slice(0, 20)), `${what}: the garbage is not echoed`)
    t.equal((await send(url, OPEN)).status, 200, `${what}: greeting v1 still answers`)

    provider.fault(JWKS, undefined)
    const mended = await greetingOtherThan(url, token, 503, 10_000, 'an answer other than 503')
    t.equal(mended.status, 200, `${what}: the token passes once the key set is mended`)
  }
  const logged = await pollUntil(() => {
    const lines = warnings(cli, 'cannot fetch the identity provider\'s key set')
    return lines.length >= Object.keys(GARBAGE).length && lines
  }, 5_000, 'a warning for each')
  t.equal(logged.length, Object.keys(GARBAGE).length, 'one warning for each')
  for (const line of logged) t.match(line, { err: { message: String } }, 'saying why')
  t.comment(`why, as logged: ${logged.map((line) => (line.err as { message: string }).message).join(' | ')}`)
  t.ok(cli.running, 'the server never stopped')
})

t.test('a discovery document of garbage at startup: the server starts, 503s, retries, and recovers', async (t) => {
  const provider = await startTestProvider(t)
  provider.fault(DISCOVERY, { status: 200, body: '{"issuer": "http://127.0.0.1:1", "jwks_uri": 42' })
  const { cli, url } = await serve(t, provider)
  const token = await provider.jwt()
  assertUnavailable(t, await send(url, GREETING, { token }), 'a token before discovery')
  t.equal((await send(url, OPEN)).status, 200, 'greeting v1 answers meanwhile')
  const retrying = await pollUntil(() => {
    const lines = warnings(cli, 'identity provider discovery failed; retrying')
    return lines.length > 0 && lines
  }, 10_000, 'a warning about discovery')
  t.match(retrying[0], { issuer: provider.issuer, err: { message: String }, retryInMs: Number }, 'saying why and when')

  for (const [what, garbage] of [['another issuer', '{"issuer": "http://127.0.0.1:1", "jwks_uri": "http://127.0.0.1:1/j"}'],
    ['no JSON', 'Service Unavailable']] as const) {
    provider.fault(DISCOVERY, { status: 200, body: garbage })
    t.equal((await send(url, GREETING, { token })).status, 503, `${what}: still 503`)
  }
  provider.fault(DISCOVERY, undefined)
  const recovered = await greetingOtherThan(url, token, 503, 40_000, 'discovery retried')
  t.equal(recovered.status, 200, 'tokens pass once discovery succeeds')
  t.comment(`why, as logged: ${warnings(cli, 'identity provider discovery failed; retrying')
    .map((line) => (line.err as { message: string }).message).join(' | ')}`)
  t.ok(cli.running, 'the server never stopped')
})
