import { connect, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { compiled, distFile } from '../helpers/build.js'
import { startCli } from '../helpers/cli.js'
import { Load } from '../helpers/load.js'
import { Child, logLines } from '../helpers/process.js'
import { pollUntil } from '../helpers/wait.js'

// The scenario, as a user met it: under a 200-connection burst on greeting v1, ten requests are sent slowly,
// half their headers before SIGTERM and the rest 500 ms after. Each must get its whole answer, in one process and
// behind --workers 2, and the server must still exit 0 (the workers only once they have answered).

const SLOW = 10
const BURST_CONNECTIONS = 200
const REST_AFTER_MS = 500

interface Slow {
  socket: Socket
  /** The rest of the headers; resolves with everything received once the server closes the connection. */
  finish: () => Promise<string>
  error: string | undefined
}

async function slowRequest(url: string, i: number): Promise<Slow> {
  const { hostname, port } = new URL(url)
  const socket = connect(Number(port), hostname)
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  let received = ''
  const slow: Slow = { socket, error: undefined, finish: async () => '' }
  socket.setEncoding('utf8').on('data', (chunk: string) => { received += chunk })
  socket.on('error', (error: NodeJS.ErrnoException) => { slow.error = error.code ?? error.message })
  const ended = new Promise<void>((resolve) => socket.once('close', () => { resolve() }))
  socket.write(`GET /api/greeting/v2/?name=Slow${String(i)} HTTP/1.1\r\nHost: ${hostname}:${port}\r\n`)
  slow.finish = async () => {
    if (!socket.destroyed) socket.write('Accept: application/json\r\n\r\n')
    await ended
    return received
  }
  return slow
}

// A listener whose process is busy (as under load) and then closes: the connections still in its accept queue.
const BUSY_LISTENER = `
import { createServer } from 'node:net'
import { acceptQueueLength } from ${JSON.stringify(distFile('src/lib/idle-connections.js'))}
const server = createServer(() => { console.log('accepted') })
server.listen(0, '127.0.0.1', () => {
  console.log('port ' + server.address().port)
  const until = Date.now() + 10000
  while (Date.now() < until && (acceptQueueLength(server) ?? 0) < 5);
  console.log('queued ' + acceptQueueLength(server))
  server.close()
})
`

t.test('what the operating system does: a connection still queued when the listener closes is reset', async (t) => {
  if (process.platform !== 'linux') {
    t.pass('the accept queue is read from /proc/self/net on Linux only', { skip: process.platform })
    return
  }
  await compiled()
  const listener = new Child(t, process.execPath, ['--input-type=module', '-e', BUSY_LISTENER], { coverage: false })
  const [, port = ''] = await listener.waitForLine(/^port (\d+)$/)
  const codes = await Promise.all(Array.from({ length: 5 }, async () => new Promise<string>((resolve) => {
    const socket = connect(Number(port), '127.0.0.1')
    socket.once('error', (error: NodeJS.ErrnoException) => { resolve(error.code ?? error.message) })
    socket.once('close', () => { resolve('closed') })
  })))
  const { stdout } = await listener.waitForExit()
  t.comment(`${stdout.trim().split('\n').join(', ')}; the clients: ${codes.join(' ')}`)
  t.match(stdout, /^queued 5$/m, 'the five connections were in the accept queue (seen in /proc/self/net/tcp)')
  t.notMatch(stdout, /accepted/, 'none was accepted')
  t.same(codes, Array(5).fill('ECONNRESET'), 'each queued connection was reset when the listener closed, not refused')
})

for (const workers of [1, 2]) {
  t.test(`--workers ${String(workers)}: requests arriving across SIGTERM in a burst are all answered`, async (t) => {
    const { cli, url } = await startCli(t, [
      '--host', '127.0.0.1', '--port', '0', '--workers', String(workers), '--shutdown-timeout', '10000',
      // Load shedding off: on a saturated machine it would answer some of them 503, which is an answer, but not the
      // one this test is about.
      '--max-event-loop-delay', '0',
    ], { cwd: t.testdir() })
    if (workers > 1) {
      await pollUntil(() => logLines(cli.stdout).filter((l) => String(l.msg).endsWith(' is serving')).length >= 2,
        40_000, 'both workers serving')
    }
    const load = new Load(t, `${url}/api/greeting/v1`, { connections: BURST_CONNECTIONS, seconds: 6 })
    // The burst under way (500 requests answered): the server's processes are saturated when the slow requests start.
    await pollUntil(() => (cli.stdout.match(/"msg":"request"/g) ?? []).length >= 500, 30_000, 'the burst under way', 200)
    const slow = await Promise.all(Array.from({ length: SLOW }, async (_, i) => slowRequest(url, i)))
    t.teardown(() => { for (const s of slow) s.socket.destroy() })
    const signalledAt = Date.now()
    cli.process.kill('SIGTERM')
    await sleep(REST_AFTER_MS)
    const answers = await Promise.all(slow.map(async (s) => s.finish()))
    const exit = await cli.waitForExit(15_000)
    const stoppedAfter = Date.now() - signalledAt
    const burst = await load.result()

    const answered = answers.filter((a) => /^HTTP\/1\.1 200 OK\r\n/.test(a) && /"message":"Hello Slow\d"/.test(a))
    t.comment(`burst: ${String(burst.requests.total)} requests, ${String(burst['2xx'])} 2xx, ` +
      `${String(burst.errors)} errors (refused once the listener closed); slow requests answered: ` +
      `${String(answered.length)}/${String(SLOW)}; errors: ${slow.map((s) => s.error ?? '-').join(' ')}; ` +
      `exit ${String(exit.code)} ${String(stoppedAfter)} ms after SIGTERM`)
    t.equal(answered.length, SLOW, 'every slow request got its whole 200 answer',
      { statusLines: answers.map((a) => a.split('\r\n')[0]) })
    t.same(slow.flatMap((s) => s.error === undefined ? [] : [s.error]), [], 'no connection was reset')
    for (const answer of answers) t.match(answer, /\r\nconnection: close\r\n/i, 'and its connection closed after it')
    t.equal(exit.code, 0, 'exit code 0')
    t.ok(stoppedAfter >= REST_AFTER_MS, 'the server stopped only after the slow requests were answered')
  })
}
