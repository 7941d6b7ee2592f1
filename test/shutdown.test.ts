import { connect, type Socket } from 'node:net'
import t from 'tap'
import { startCli } from './helpers/cli.js'
import { send, type Answer } from './helpers/http.js'
import { pollUntil } from './helpers/wait.js'

// Graceful shutdown of the real server process: SIGTERM turns readiness to 503 at once, requests keep
// being served through --shutdown-delay, then the listener closes (new connections are refused), the
// requests in flight finish, and the process exits 0.

// Long enough that the readiness change is seen within it while other test files load the machine.
const DELAY_MS = 2500

type Outcome = { kind: 'answer', answer: Answer<{ message?: string }> } | { kind: 'error', code: string }

async function attempt(url: string, path: string): Promise<Outcome> {
  try {
    return { kind: 'answer', answer: await send(url, path) }
  } catch (error) {
    return { kind: 'error', code: (error as NodeJS.ErrnoException).code ?? (error as Error).message }
  }
}

/**
 * A GET whose request line and half its headers are sent: a request that has begun to arrive, in flight until
 * `finish` sends the rest. Node counts such a connection as idle; the server must not.
 */
async function slowRequest(url: string): Promise<{ socket: Socket, finish: () => Promise<string> }> {
  const { hostname, port } = new URL(url)
  const socket = connect(Number(port), hostname)
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  let received = ''
  socket.setEncoding('utf8').on('data', (chunk: string) => { received += chunk })
  const ended = new Promise<void>((resolve) => socket.once('close', () => { resolve() }))
  socket.write(`GET /api/greeting/v2/?name=Slow HTTP/1.1\r\nHost: ${hostname}:${port}\r\n`)
  return {
    socket,
    finish: async () => {
      socket.write('Accept: application/json\r\n\r\n')
      await ended
      return received
    },
  }
}

t.test('SIGTERM in a burst: readiness 503, accepted requests answered, new connections refused, exit 0', async (t) => {
  const { cli, url } = await startCli(t, [
    '--host', '127.0.0.1', '--port', '0', '--shutdown-delay', String(DELAY_MS), '--shutdown-timeout', '10000',
  ], { cwd: t.testdir() })
  t.equal((await send(url, '/healthz/readiness')).status, 200, 'ready before')

  const slow = await slowRequest(url)
  t.teardown(() => slow.socket.destroy())

  // Clients that behave like a load balancer's: they send until readiness says the server is leaving.
  let draining = false
  const outcomes: Outcome[] = []
  const clients = Array.from({ length: 8 }, async () => {
    while (!draining) outcomes.push(await attempt(url, '/api/greeting/v1'))
  })
  await pollUntil(() => outcomes.length >= 40, 20_000, 'a burst under way')
  const burstBefore = outcomes.length
  cli.process.kill('SIGTERM')

  const notReady = await pollUntil(async () => {
    const answer = await send(url, '/healthz/readiness')
    return answer.status === 503 && answer
  }, DELAY_MS, 'readiness 503 during the shutdown delay', 20)
  draining = true
  await Promise.all(clients)
  t.match(notReady.headers['content-type'], /^application\/problem\+json/)
  t.match(notReady.body, { status: 503, detail: /^Not ready: shutdown / }, 'readiness names the shutdown')
  t.ok(outcomes.length > burstBefore, 'requests sent after SIGTERM were still served')
  const failed = outcomes.filter((o) =>
    o.kind !== 'answer' || o.answer.status !== 200 || o.answer.body?.message === undefined)
  t.same(failed, [], `all ${outcomes.length} requests of the burst got a full 200`)

  // A connection whose handshake completes between the last accept and the listener's close is reset by the kernel
  // (see test/reliability/shutdown-burst.test.ts): a probe may meet that moment before it meets the closed port.
  const probes: string[] = []
  const refused = await pollUntil(async () => {
    const outcome = await attempt(url, '/healthz/liveness')
    if (outcome.kind === 'error') probes.push(outcome.code)
    return outcome.kind === 'error' && outcome.code === 'ECONNREFUSED' && outcome.code
  }, DELAY_MS + 3000, 'the listener closed', 50)
  t.equal(refused, 'ECONNREFUSED', 'new connections are refused once the delay is over')
  t.ok(probes.length <= 2, `at most one probe met the closing moment (${probes.join(', ')})`)
  t.equal(cli.process.exitCode, null, 'still running while a request is in flight')

  const answer = await slow.finish()
  t.match(answer, /^HTTP\/1\.1 200 OK\r\n/, 'the request that had begun to arrive got its answer')
  t.match(answer, /\r\nconnection: close\r\n/i, 'and its connection was closed after it')
  t.match(answer, /"message":"Hello Slow"/, 'with its whole body')

  const result = await cli.waitForExit(10_000)
  t.equal(result.code, 0, 'exit code 0')
  t.match(result.stdout, /"msg":"stopped: the listener and the database are closed"/)
})
