import { availableParallelism } from 'node:os'
import t from 'tap'
import { resolveServerConfig } from '#src/cli/config.js'
import { cliProcess, startCli } from './helpers/cli.js'
import { send } from './helpers/http.js'
import { logLines, occupiedPort, type Child } from './helpers/process.js'
import { pollUntil } from './helpers/wait.js'

// --workers over real processes: a primary forking node:cluster workers that share one port.

const WAIT_MS = 40_000

interface Serving {
  worker: number
  workerPid: number
}

function servingWorkers(cli: Child): Serving[] {
  return logLines(cli.stdout)
    .filter((line) => typeof line.msg === 'string' && line.msg.endsWith(' is serving'))
    .map((line) => ({ worker: line.worker as number, workerPid: line.workerPid as number }))
}

/** Sends `count` requests, each on a new connection, and returns the pid that logged each one. */
async function servedBy(cli: Child, url: string, count: number): Promise<number[]> {
  const ids: string[] = []
  for (let i = 0; i < count; i++) {
    const answer = await send(url, '/api/greeting/v1')
    if (answer.status !== 200) throw new Error(`answered ${answer.status}: ${answer.text}`)
    ids.push(String(answer.headers['x-request-id']))
  }
  return pollUntil(() => {
    const completed = new Map(logLines(cli.stdout)
      .filter((line) => line.msg === 'request')
      .map((line) => [line.reqId, line.pid as number]))
    const pids = ids.map((id) => completed.get(id))
    return pids.every((pid) => pid !== undefined) && pids
  }, 5000, 'every request logged')
}

/**
 * Sends requests, 8 at a time, until each of `pids` has served one (at most 64), and returns who served each. The
 * workers accept from the shared socket themselves (SCHED_NONE): the kernel picks which one wakes for a connection,
 * and a few in a row may all go to the same worker.
 */
async function servedUntil(cli: Child, url: string, pids: number[]): Promise<number[]> {
  const served: number[] = []
  for (let round = 0; round < 8 && !pids.every((pid) => served.includes(pid)); round++) {
    served.push(...await servedBy(cli, url, 8))
  }
  return served
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

t.test('two workers share the port and the load, a killed worker is replaced, SIGTERM stops all with 0', async (t) => {
  const { cli, url } = await startCli(t, ['--workers', '2', '--host', '127.0.0.1', '--port', '0'], { cwd: t.testdir() })
  const first = await pollUntil(() => {
    const serving = servingWorkers(cli)
    return serving.length >= 2 && serving
  }, WAIT_MS, 'two workers serving')
  const primaryLine = logLines(cli.stdout).find((line) => line.role === 'primary')
  t.equal(primaryLine?.pid, cli.process.pid, 'the primary logs as primary with its own pid')
  const workerPids = first.map((w) => w.workerPid)
  t.not(workerPids[0], workerPids[1])

  const pids = await servedUntil(cli, url, workerPids)
  t.same(new Set(pids), new Set(workerPids), 'requests were served by both workers')

  const victim = workerPids[0] ?? 0
  process.kill(victim, 'SIGKILL')
  const noticed = (line: Record<string, unknown>): boolean =>
    line.workerPid === victim && String(line.msg).includes('starting a replacement')
  await pollUntil(() => logLines(cli.stdout).some(noticed), WAIT_MS, 'the death noticed')
  const during = await servedBy(cli, url, 4)
  t.ok(during.every((pid) => pid === workerPids[1]), 'the surviving worker serves while the replacement starts')

  const replacement = await pollUntil(() => servingWorkers(cli).find((w) => !workerPids.includes(w.workerPid)),
    WAIT_MS, 'a replacement serving')
  t.not(replacement.workerPid, victim)
  const after = await servedUntil(cli, url, [workerPids[1] ?? 0, replacement.workerPid])
  t.same(new Set(after), new Set([workerPids[1], replacement.workerPid]), 'the replacement takes its share')

  const result = await cli.stop()
  t.equal(result.code, 0, 'the primary exits 0 once the workers have')
  t.match(result.stdout, /every worker has stopped/)
  for (const pid of [workerPids[1] ?? 0, replacement.workerPid]) t.notOk(alive(pid), `worker ${pid} is gone`)
})

t.test('workers that cannot start make the primary give up with exit code 1', async (t) => {
  // Honest failure: the primary only migrates, it never binds; each worker's listen fails because
  // someone else holds the port, so every worker dies before serving.
  const port = await occupiedPort(t)
  const args = ['--workers', '3', '--host', '127.0.0.1', '--port', String(port)]
  const cli = await cliProcess(t, args, { cwd: t.testdir() })
  const result = await cli.waitForExit(WAIT_MS)
  t.equal(result.code, 1)
  t.match(result.stderr, /the workers keep failing to start \(3 in a row/)
  const deaths = logLines(result.stdout).filter((line) => String(line.msg).includes(' died with '))
  t.ok(deaths.length >= 3, 'three deaths are logged')
  const workerPids = logLines(result.stdout)
    .flatMap((line) => typeof line.workerPid === 'number' ? [line.workerPid] : [])
  for (const pid of new Set(workerPids)) t.notOk(alive(pid), `worker ${pid} is gone`)
})

t.test('the production options are validated once, with one-line errors', async (t) => {
  const resolve = (flags: Record<string, unknown>) =>
    resolveServerConfig({ flags: { instancePath: t.testdir(), ...flags }, env: {} })
  const config = resolve({})
  t.equal(config.workers, 1)
  t.same(
    [config.bodyLimit, config.keepAliveTimeout, config.requestTimeout, config.headersTimeout],
    [1_048_576, 72_000, 30_000, 15_000],
  )
  t.equal(config.trustProxy, false)
  t.equal(config.maxHeapUsed, 0.95, 'a ratio of the heap limit, which load shedding turns into bytes')
  t.equal(resolve({ workers: 'auto' }).workers, availableParallelism())
  t.equal(resolve({ workers: 3 }).workers, 3, 'a number from a config file')
  t.equal(resolve({ workers: '2' }).workers, 2, 'a number as text, from a flag or a variable')
  const refused: [Record<string, unknown>, RegExp][] = [
    [{ workers: 'many' }, /^invalid --workers \("many"\): expected auto or a whole number from 1 to 256$/],
    [{ workers: '0' }, /^invalid --workers \("0"\)/],
    [{ workers: '2', db: ':memory:' }, /^invalid --workers: an in-memory database is private to each process/],
    [{ shutdownDelay: 10_000 }, /^invalid --shutdown-delay \(10000\): must be shorter than --shutdown-timeout \(10000\)$/],
    [{ headersTimeout: 40_000 }, /^invalid --headers-timeout \(40000\): must not exceed --request-timeout \(30000\)$/],
    [{ bodyLimit: 0 }, /^invalid --body-limit \(0\)/],
    [{ keepAliveTimeout: Number.NaN }, /^invalid --keep-alive-timeout \(not a number\)/],
    [{ maxRss: -1 }, /^invalid --max-rss \(-1\)/],
    [{ trustProxy: '10.0.0.0/40' }, /^invalid --trust-proxy \("10\.0\.0\.0\/40"\)/],
  ]
  for (const [change, message] of refused) {
    t.throws(() => resolve(change), message, JSON.stringify(change))
  }
})
