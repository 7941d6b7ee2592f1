// npm run bench: the server as users run it (the built CLI, its default flags, a process of its own) against a bare
// Fastify route (scripts/bench/baseline.mjs) measured in the same run, as ratios.
//
//   npm run bench                   every scenario, 5 s a run, A B A B against the baseline
//   npm run bench -- --short        2 s a run, A B once: proves the bench works (CI), judges nothing
//   npm run bench -- --json         the results as JSON on stdout, the table on stderr
//   npm run bench -- --check        exit 1 when a figure misses its target
//   npm run bench -- --only v3      only the scenarios whose name holds the text
//   npm run bench -- --config MySQL  only the configurations whose name holds the text (PostgreSQL, MySQL, …)
//   npm run bench -- --profile DIR  the servers run with --cpu-prof, their profiles written to DIR
//   npm run bench -- --no-pin       let every process run on any core (see PIN below)
//
// BENCH_CONNECTIONS (default 50) and BENCH_DURATION (seconds a run) tune it. PostgreSQL scenarios need
// 127.0.0.1:5432 (trust auth), MySQL ones 127.0.0.1:3306 (root without a password); without them they are left out
// and the output says so.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { cpus, tmpdir, totalmem, userInfo } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import autocannon from 'autocannon'
import mysql from 'mysql2/promise'
import pg from 'pg'
import { startTestProvider, type TestProvider } from '../test/fixtures/oidc-provider.js'
// With the load generator on the same cores, CPU time a request is steadier than requests a second.
import { cpuSeconds, stopChild } from './bench/server-process.js'
import { startNodeFlags } from './start-options.mjs'

const args = process.argv.slice(2)
const short = args.includes('--short')
const asJson = args.includes('--json')
const check = args.includes('--check')
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] ?? '' : ''
const onlyConfig = args.includes('--config') ? args[args.indexOf('--config') + 1] ?? '' : ''
const profile = args.includes('--profile') ? args[args.indexOf('--profile') + 1] : undefined
const connections = Number(process.env.BENCH_CONNECTIONS ?? 50)
const duration = Number(process.env.BENCH_DURATION ?? (short ? 2 : 5))
const rounds = short ? 1 : 2
// On Linux with two cores or more, a single-process server (the baseline, the CLI, a driver loop) runs on the first
// core and this process (the load generator) on the second: otherwise the scheduler moves them onto one core at
// times, and the same configuration's CPU a request varied by half from round to round (pinned: by a few per cent).
// A cluster (--workers 2) and the database servers are left to take any core, as they would.
const PIN = process.platform === 'linux' && cpus().length >= 2 && !args.includes('--no-pin') && hasTaskset()
const SERVER_CORE = '0'
const LOAD_CORE = '1'

function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** A command line for spawn(): on the server's core when pinning, as given otherwise. */
function onServerCore(command: string, commandArgs: string[], pinned = true): [string, string[]] {
  return PIN && pinned ? ['taskset', ['-c', SERVER_CORE, command, ...commandArgs]] : [command, commandArgs]
}
const out = (line: string): void => { (asJson ? process.stderr : process.stdout).write(`${line}\n`) }

const root = new URL('..', import.meta.url).pathname
// What the package's bin runs, as the container image runs it: the node options of its entry point, which are those
// of `npm start` (package.json's start script: V8's young generation and the old one's growth bounded), and glibc's
// malloc arenas as its environment sets them (see the README's Production: Memory).
const CLI = join(root, 'dist/cli/main.js')
const NODE_FLAGS = startNodeFlags(root)
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8')
// The exec form is a JSON array: node, its options, the bin.
const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1] ?? '[]') as string[]
if (entrypoint[0] !== 'node' || entrypoint.at(-1) !== '/app/dist/cli/main.js'
  || entrypoint.slice(1, -1).join(' ') !== NODE_FLAGS.join(' ')) {
  throw new Error(`the image's entry point does not give node the start script's options (${NODE_FLAGS.join(' ')})`)
}
const arenas = /^\s+MALLOC_ARENA_MAX=(\d+)/m.exec(dockerfile)?.[1]
const IMAGE_ENV = arenas === undefined ? {} : { MALLOC_ARENA_MAX: arenas }
const work = mkdtempSync(join(tmpdir(), 'mrmat-bench-'))
const teardowns: (() => unknown)[] = [() => { rmSync(work, { recursive: true, force: true }) }]

interface Measured {
  rps: number
  total: number
  p50: number
  p99: number
  errors: number
  non2xx: number
}

async function measure(url: string, options: Partial<autocannon.Options> = {}, seconds = duration): Promise<Measured> {
  const result = await autocannon({ url, connections, duration: seconds, ...options })
  return {
    rps: result.requests.average,
    total: result.requests.total,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  }
}

/** Resolves to the first line a child prints on stdout. */
async function firstLine(child: ChildProcess): Promise<string> {
  if (child.stdout === null) throw new Error('no stdout')
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', resolve)
    child.once('exit', (code) => { reject(new Error(`exited with ${String(code)} before printing`)) })
  })
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net')
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function healthy(url: string): Promise<boolean> {
  try {
    return (await fetch(`${url}/healthz/`, { signal: AbortSignal.timeout(1000) })).status === 200
  } catch {
    return false
  }
}

interface Server {
  url: string
  pids: () => number[]
  /** Milliseconds from spawn to the first 200 on /healthz/. */
  startup: number
  stop: () => Promise<void>
}

/** The bare baseline (scripts/bench/baseline.mjs), on the server's core; it prints its URL once listening. */
function spawnBaseline(): ChildProcess {
  return spawn(...onServerCore(process.execPath, [join(root, 'scripts/bench/baseline.mjs')]),
    { stdio: ['ignore', 'pipe', 'inherit'] })
}

/** The built CLI as a user starts it, its log written to a file as a container's log driver would take it. */
async function startCli(name: string, flags: string[], pinned = true): Promise<Server> {
  const port = await freePort()
  const instance = mkdtempSync(join(work, `${name}-`))
  const log = openSync(join(work, `${name}.log`), 'a')
  const started = performance.now()
  const cliArgs = [CLI, '--host', '127.0.0.1', '--port', String(port), '--instance-path', instance, ...flags]
  const node = [...NODE_FLAGS, ...profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', join(profile, name)]]
  // taskset runs the command in its own place: the child's pid is the server's.
  const child = spawn(...onServerCore(process.execPath, [...node, ...cliArgs], pinned),
    { stdio: ['ignore', log, log], env: { ...process.env, ...IMAGE_ENV } })
  const url = `http://127.0.0.1:${String(port)}`
  while (!(await healthy(url))) {
    if (child.exitCode !== null) {
      throw new Error(`${name} exited with ${String(child.exitCode)}; see ${work}/${name}.log`)
    }
    await sleep(5)
  }
  const startup = performance.now() - started
  const stop = (): Promise<void> => stopChild(child)
  teardowns.push(stop)
  const pids = (): number[] => {
    const pid = child.pid ?? 0
    // A cluster's workers are the primary's children.
    let children: number[] = []
    try {
      children = readFileSync(`/proc/${String(pid)}/task/${String(pid)}/children`, 'utf8').split(' ').map(Number)
        .filter((n) => n > 0)
    } catch { /* gone */ }
    return [pid, ...children]
  }
  return { url, pids, startup, stop }
}

function rssMb(pids: number[]): number {
  let kb = 0
  for (const pid of pids) {
    try {
      kb += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${String(pid)}/status`, 'utf8'))?.[1] ?? 0)
    } catch { /* gone */ }
  }
  return kb / 1024
}

interface Context {
  token: string
  resourceId: number
}

interface Scenario {
  name: string
  path: (c: Context) => string
  options?: (c: Context) => Partial<autocannon.Options>
}

let unique = 0
const nextName = (): string => `bench-${String(process.pid)}-${String(unique++)}`
const bearer = (c: Context) => ({ headers: { authorization: `Bearer ${c.token}` } })
const create = (c: Context): Partial<autocannon.Options> => ({
  method: 'POST',
  headers: { authorization: `Bearer ${c.token}`, 'content-type': 'application/json' },
  requests: [{ setupRequest: (request) => ({ ...request, body: JSON.stringify({ name: nextName() }) }) }],
})

const SCENARIOS: Scenario[] = [
  { name: 'greeting v1', path: () => '/api/greeting/v1/' },
  { name: 'greeting v2 ?name=', path: () => '/api/greeting/v2/?name=Bob' },
  { name: 'greeting v3, JWT', path: () => '/api/greeting/v3/', options: bearer },
  // What a stranger without a token costs: every answer is a 401 problem (non-2xx by design).
  { name: 'greeting v3, no token: 401', path: () => '/api/greeting/v3/' },
  { name: 'resource get by id', path: (c) => `/api/resource/v1/${String(c.resourceId)}`, options: bearer },
  { name: 'resource list limit 10', path: () => '/api/resource/v1/?limit=10&after=500', options: bearer },
  { name: 'resource create', path: () => '/api/resource/v1/', options: create },
  {
    name: 'resource mix 80/20',
    path: () => '/api/resource/v1/',
    options: (c) => ({
      requests: [{
        setupRequest: (request) => (Math.random() < 0.8
          ? { ...request, method: 'GET', path: `/api/resource/v1/${String(c.resourceId)}`, body: undefined,
            headers: { authorization: `Bearer ${c.token}` } }
          : { ...request, method: 'POST', path: '/api/resource/v1/', body: JSON.stringify({ name: nextName() }),
            headers: { authorization: `Bearer ${c.token}`, 'content-type': 'application/json' } }),
      }],
    }),
  },
]

/** Targets by scenario and configuration: the ratio to the baseline (on PostgreSQL: to the same-core limit). */
const TARGETS: Record<string, Record<string, number>> = {
  'greeting v1': { default: 0.8, 'access log off': 0.95 },
  'greeting v3, JWT': { default: 0.7, 'access log off': 0.85 },
  'resource get by id': { default: 0.6, 'access log off': 0.75, 'PostgreSQL': 0.7, 'PostgreSQL, access log off': 0.8 },
  'resource list limit 10': { default: 0.4, 'access log off': 0.5 },
  'resource create': { default: 0.3, 'access log off': 0.4, 'PostgreSQL': 0.7, 'PostgreSQL, access log off': 0.8 },
}

/** How much lower greeting v1's ratio may be with metrics on than in the default configuration. */
const METRICS_DROP_TARGET = 0.05

interface Row {
  config: string
  scenario: string
  rps: number
  p50: number
  p99: number
  baseline: number
  ratio: number
  /** On PostgreSQL: 1 / (1/baseline + 1/driver loop), what the two cores allow; the ratio is then to it. */
  limit?: number
  target?: number
  rssMb: number
  /** CPU microseconds a request, of the server and of the baseline. */
  cpuUs: number
  baselineCpuUs: number
  /** The CPU the server and the baseline used while measured, in cores (1: one core busy all the time). */
  busy: number
  baselineBusy: number
  errors: number
  non2xx: number
}

const rows: Row[] = []
let baselinePid = 0
/**
 * The bare baseline is meant to keep its core busy: if it used less, something else (the load generator, a neighbour
 * on the machine) decided its req/s, and a ratio to it does not measure the server. Marked in the output.
 */
const SATURATED = 0.85

/** A B A B: the baseline and the scenario in turns, the same connections and duration, so that drift cancels. */
async function compare(config: string, server: Server, baselineUrl: string, scenario: Scenario, c: Context,
  limit?: (baseline: number) => Promise<number>): Promise<void> {
  const url = `${server.url}${scenario.path(c)}`
  const options = scenario.options?.(c) ?? {}
  await measure(url, options, 1)
  let base = 0
  let baseCpu = 0
  let baseTotal = 0
  let cpu = 0
  let baseWall = 0
  let wall = 0
  let sum: Measured = { rps: 0, total: 0, p50: 0, p99: 0, errors: 0, non2xx: 0 }
  for (let round = 0; round < rounds; round++) {
    const baseStart = cpuSeconds([baselinePid])
    let began = performance.now()
    const b = await measure(baselineUrl)
    baseWall += (performance.now() - began) / 1000
    baseCpu += cpuSeconds([baselinePid]) - baseStart
    base += b.rps
    baseTotal += b.total
    const start = cpuSeconds(server.pids())
    began = performance.now()
    const m = await measure(url, options)
    wall += (performance.now() - began) / 1000
    cpu += cpuSeconds(server.pids()) - start
    sum = { rps: sum.rps + m.rps, total: sum.total + m.total, p50: Math.max(sum.p50, m.p50),
      p99: Math.max(sum.p99, m.p99), errors: sum.errors + m.errors, non2xx: sum.non2xx + m.non2xx }
  }
  const baseline = base / rounds
  const rps = sum.rps / rounds
  const sameCore = limit === undefined ? undefined : await limit(baseline)
  const row: Row = { config, scenario: scenario.name, rps, p50: sum.p50, p99: sum.p99, baseline,
    ratio: rps / (sameCore ?? baseline), rssMb: rssMb(server.pids()), cpuUs: (cpu / sum.total) * 1e6,
    baselineCpuUs: (baseCpu / baseTotal) * 1e6, busy: cpu / wall, baselineBusy: baseCpu / baseWall,
    errors: sum.errors, non2xx: sum.non2xx }
  if (sameCore !== undefined) row.limit = sameCore
  const target = TARGETS[scenario.name]?.[config]
  if (target !== undefined) row.target = target
  rows.push(row)
  out(`  ${config} · ${scenario.name}: ${Math.round(rps)} req/s, ratio ${row.ratio.toFixed(2)}, `
    + `CPU ${row.cpuUs.toFixed(0)} µs a request (baseline ${row.baselineCpuUs.toFixed(0)}), `
    + `cores busy ${row.busy.toFixed(2)} (baseline ${row.baselineBusy.toFixed(2)})`
    + (target === undefined ? '' : ` (target ${target.toFixed(2)})`))
  if (row.baselineBusy < SATURATED) {
    out(`    the baseline kept its core only ${(100 * row.baselineBusy).toFixed(0)} % busy: the load generator or the `
      + 'machine held it back, and this ratio says more about them than about the server')
  }
}

/**
 * One request of the bench's own (seeding, say), as a well-behaved client makes it: a 503 is retried after its
 * Retry-After, a few times; a server just started on a busy machine may shed its first requests.
 */
async function call(url: string, token: string, method = 'GET', body?: unknown): Promise<Record<string, unknown>> {
  for (let attempt = 1; ; attempt++) {
    const res = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    if (res.ok) return await res.json() as Record<string, unknown>
    const text = await res.text()
    if (res.status !== 503 || attempt === 5) throw new Error(`${method} ${url}: ${String(res.status)} ${text}`)
    await sleep(Math.min(Number(res.headers.get('retry-after')) || 1, 5) * 1000)
  }
}

/** 1,000 resources, so that lists page over real rows; the id of one to get. */
async function seed(server: Server, token: string): Promise<number> {
  let id = 0
  for (let batch = 0; batch < 20; batch++) {
    const made = await Promise.all(Array.from({ length: 50 }, () =>
      call(`${server.url}/api/resource/v1/`, token, 'POST', { name: nextName() })))
    id = made[0]?.id as number
  }
  return id
}

const selected = (s: Scenario) => only === '' || s.name.includes(only)

async function runConfig(config: string, flags: string[], baselineUrl: string, provider: TestProvider,
  scenarios: Scenario[], limit?: (scenario: Scenario, baseline: number, c: Context) => Promise<number>): Promise<void> {
  const list = scenarios.filter(selected)
  if (list.length === 0 || !config.includes(onlyConfig)) return
  out(`${config}: mrmat-ts-api-fastify ${flags.join(' ')}`)
  const server = await startCli(config.replace(/\W+/g, '-'), [...flags, '--issuer', provider.issuer,
    '--audience', provider.audience], !flags.includes('--workers'))
  const token = await provider.jwt()
  const c = { token, resourceId: await seed(server, token) }
  for (const s of list) {
    await compare(config, server, baselineUrl, s, c, limit === undefined ? undefined : (b) => limit(s, b, c))
  }
  await server.stop()
}

async function postgresDatabase(): Promise<string | undefined> {
  // The operating system's user, as the server picks it: $USER may be unset or empty (CI's is).
  const user = [process.env.PGUSER, process.env.USER].find((name) => name !== undefined && name !== '')
    ?? userInfo().username
  const admin = new pg.Pool({ host: '127.0.0.1', port: 5432, database: 'postgres', max: 1,
    connectionTimeoutMillis: 2000, user })
  admin.on('error', () => undefined)
  const name = `mrmat_bench_${String(process.pid)}`
  try {
    await admin.query(`CREATE DATABASE ${name}`)
  } catch (error) {
    out(`PostgreSQL on 127.0.0.1:5432 is not available (${(error as Error).message}): its scenarios are left out`)
    await admin.end()
    return undefined
  }
  teardowns.push(async () => {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await admin.end()
  })
  return `postgres://127.0.0.1:5432/${name}`
}

async function mysqlDatabase(): Promise<string | undefined> {
  const name = `mrmat_bench_${String(process.pid)}`
  let admin: mysql.Connection
  try {
    admin = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root', connectTimeout: 2000 })
    await admin.query(`CREATE DATABASE ${name}`)
  } catch (error) {
    out(`MySQL on 127.0.0.1:3306 is not available (${(error as Error).message}): its scenarios are left out`)
    return undefined
  }
  teardowns.push(async () => {
    await admin.query(`DROP DATABASE IF EXISTS ${name}`)
    await admin.end()
  })
  return `mysql://root@127.0.0.1:3306/${name}`
}

async function driverLoop(url: string, kind: 'get' | 'create', resourceId: number): Promise<number> {
  const loop = url.startsWith('mysql:') ? 'scripts/bench/mysql-loop.mjs' : 'scripts/bench/pg-loop.mjs'
  const child = spawn(...onServerCore(process.execPath, [join(root, loop), url, kind, '10', String(connections),
    String(duration), String(resourceId)]), { stdio: ['ignore', 'pipe', 'inherit'] })
  return (JSON.parse(await firstLine(child)) as { qps: number }).qps
}

/**
 * Milliseconds from spawn to the first 200 of the bare baseline: the same measure of a process that loads Fastify
 * alone (from node_modules, as people run it), to tell this machine's speed by.
 */
async function baselineStartup(): Promise<number> {
  const started = performance.now()
  const child = spawnBaseline()
  try {
    const url = await firstLine(child)
    while ((await fetch(url).catch(() => undefined))?.status !== 200) await sleep(5)
    return performance.now() - started
  } finally {
    await stopChild(child)
  }
}

const median = (sorted: number[]): number => sorted[Math.floor(sorted.length / 2)] ?? 0

/** The CLI's starts and the baseline's, one after the other, each sorted. */
async function startups(): Promise<{ cli: number[], baseline: number[] }> {
  const cli: number[] = []
  const baseline: number[] = []
  for (let i = 0; i < (short ? 1 : 5); i++) {
    const server = await startCli(`startup-${String(i)}`, [])
    cli.push(server.startup)
    await server.stop()
    baseline.push(await baselineStartup())
  }
  return { cli: cli.sort((a, b) => a - b), baseline: baseline.sort((a, b) => a - b) }
}

function table(): string {
  const header = ['configuration', 'scenario', 'req/s', 'p50 ms', 'p99 ms', 'baseline', 'limit', 'ratio', 'target',
    'CPU µs/req', 'busy', 'RSS MB', 'err/non-2xx']
  const lines = rows.map((r) => [r.config, r.scenario, String(Math.round(r.rps)), String(r.p50), String(r.p99),
    String(Math.round(r.baseline)), r.limit === undefined ? '' : String(Math.round(r.limit)), r.ratio.toFixed(2),
    r.target === undefined ? '' : `${r.target.toFixed(2)}${r.ratio < r.target ? ' MISSED' : ' ok'}`,
    `${r.cpuUs.toFixed(0)} (${r.baselineCpuUs.toFixed(0)})`,
    `${r.busy.toFixed(2)} (${r.baselineBusy.toFixed(2)})${r.baselineBusy < SATURATED ? ' !' : ''}`, r.rssMb.toFixed(0),
    `${String(r.errors)}/${String(r.non2xx)}`])
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)))
  const line = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ')
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...lines.map(line)].join('\n')
}

try {
  out('building dist/ (npm run build)')
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] })
  const provider = await startTestProvider({ teardown: (fn) => teardowns.push(fn) }, { accessTokenTTL: 3600 })
  if (PIN) execFileSync('taskset', ['-a', '-p', '-c', LOAD_CORE, String(process.pid)], { stdio: 'ignore' })
  const baselineProcess = spawnBaseline()
  teardowns.push(() => baselineProcess.kill('SIGTERM'))
  const baselineUrl = await firstLine(baselineProcess)
  baselinePid = baselineProcess.pid ?? 0
  await measure(baselineUrl, {}, 1)

  const startup = await startups()
  const startupLine = 'startup to the first 200 on /healthz/, empty instance: median '
    + `${median(startup.cli).toFixed(0)} ms (target 400); the bare baseline's to its first 200, in turn with it: `
    + `${median(startup.baseline).toFixed(0)} ms`
  out(startupLine)

  await runConfig('default', [], baselineUrl, provider, SCENARIOS)
  await runConfig('access log off', ['--no-access-log'], baselineUrl, provider, SCENARIOS)
  // Metrics are off by default (the default configuration above); on, each request is observed into a histogram,
  // served on a port of its own as an operator would run it. Tracing stays off: without an OTLP endpoint it costs
  // nothing, as its modules are not even loaded.
  await runConfig('metrics on', ['--metrics', '--metrics-port', '0'], baselineUrl, provider,
    SCENARIOS.filter((s) => s.name === 'greeting v1' || s.name === 'greeting v3, JWT'
      || s.name === 'resource get by id'))
  await runConfig('--workers 2', ['--workers', '2'], baselineUrl, provider,
    SCENARIOS.filter((s) => s.name === 'greeting v1' || s.name === 'resource get by id'))

  /** A database's configurations, with and without the access log, against its driver running alone. */
  const onDatabase = async (name: string, driverName: string, url: string | undefined): Promise<void> => {
    if (url === undefined) return
    const scenarios = SCENARIOS.filter((s) => s.name === 'resource get by id' || s.name === 'resource create')
    const limit = async (s: Scenario, baseline: number, c: Context): Promise<number> => {
      const driver = await driverLoop(url, s.name === 'resource create' ? 'create' : 'get', c.resourceId)
      out(`    the ${driverName} driver alone: ${Math.round(driver)} queries/s`)
      return 1 / (1 / baseline + 1 / driver)
    }
    await runConfig(name, ['--db', url], baselineUrl, provider, scenarios, limit)
    await runConfig(`${name}, access log off`, ['--db', url, '--no-access-log'], baselineUrl, provider, scenarios,
      limit)
  }
  await onDatabase('PostgreSQL', 'pg',
    onlyConfig === '' || 'PostgreSQL'.includes(onlyConfig) ? await postgresDatabase() : undefined)
  await onDatabase('MySQL', 'mysql2',
    onlyConfig === '' || 'MySQL'.includes(onlyConfig) ? await mysqlDatabase() : undefined)

  const mix = rows.find((r) => r.config === 'default' && r.scenario === 'resource mix 80/20')
  const machine = `${String(cpus().length)} × ${cpus()[0]?.model ?? 'CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, `
    + `Node ${process.version}`
  out('')
  out(`${machine}; ${String(connections)} connections, ${String(duration)} s a run, ${String(rounds)} round(s) A B`
    + (PIN ? `; servers on core ${SERVER_CORE}, the load on core ${LOAD_CORE} (but --workers 2)` : '; unpinned'))
  out('req/s: mean requests a second; p50/p99 ms: latency percentiles in milliseconds; baseline: req/s of the bare '
    + 'Fastify route in the same rounds; limit: on PostgreSQL and MySQL, 1/(1/baseline + 1/driver alone) in req/s; '
    + 'ratio: req/s over the limit or baseline; target: the least ratio asked for (ok or MISSED; empty: none); '
    + 'CPU µs/req: CPU time a request in microseconds, the server\'s (the baseline\'s); '
    + `busy: the CPU they used while measured, in cores (! when the baseline's was under ${String(SATURATED)}: `
    + 'something else held it back, and the ratio is not the server\'s); '
    + 'RSS MB: resident memory of the server after the scenario (all processes of a cluster); '
    + 'err/non-2xx: requests that failed, and answers other than 2xx')
  out(table())
  const startupMedian = median(startup.cli)
  out(startupLine)
  out(`RSS after the mix ${mix?.rssMb.toFixed(0) ?? '?'} MB (target 120)`)
  if (asJson) {
    const results = { machine, connections, duration, rounds, pinned: PIN, startupMs: startup.cli,
      baselineStartupMs: startup.baseline, rows }
    process.stdout.write(`${JSON.stringify(results)}\n`)
  }
  const metricsDrop = (['greeting v1', 'greeting v3, JWT', 'resource get by id']).flatMap((scenario) => {
    const off = rows.find((r) => r.config === 'default' && r.scenario === scenario)
    const on = rows.find((r) => r.config === 'metrics on' && r.scenario === scenario)
    return off === undefined || on === undefined ? [] : [{ scenario, drop: off.ratio - on.ratio }]
  })
  for (const { scenario, drop } of metricsDrop) {
    out(`metrics on, ${scenario}: the ratio ${drop < 0 ? 'rises' : 'drops'} by ${Math.abs(drop).toFixed(2)} `
      + 'from the default'
      + (scenario === 'greeting v1' ? ` (target at most ${METRICS_DROP_TARGET.toFixed(2)})` : ''))
  }
  const metricsMissed = metricsDrop.some((d) => d.scenario === 'greeting v1' && d.drop > METRICS_DROP_TARGET)
  const missed = rows.filter((r) => r.target !== undefined && r.ratio < r.target).length
    + (startupMedian > 400 ? 1 : 0) + ((mix?.rssMb ?? 0) > 120 ? 1 : 0) + (metricsMissed ? 1 : 0)
  if (missed > 0) {
    // A missed target fails the run only when asked: a shared or busy machine misses them without a regression.
    out(`${String(missed)} target(s) missed${check ? '' : ' (--check makes that exit 1)'}`)
    if (check) process.exitCode = 1
  }
} finally {
  for (const fn of teardowns.reverse()) {
    try {
      await fn()
    } catch { /* best effort */ }
  }
}
