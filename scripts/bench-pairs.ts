// npm run bench:pairs: two builds of the server compared in pairs of fresh processes, for a change too small for
// `npm run bench` to resolve. This machine's speed moves by tens of per cent from minute to minute, and a process can
// land in a slower state than the next one started the same way; a pair runs A and B one right after the other (in
// alternating order), each a process of its own, and the figure is the CPU time a request, so that a drift shared by
// the pair cancels in its difference and the median of the differences says which build costs less.
//
//   cp -r dist var/dist-before; <change the code>; npm run build
//   npm run bench:pairs -- --a var/dist-before --b dist [--pairs 12] [--seconds 3] [--path /api/greeting/v1/]
//                          [-- <server flags, e.g. --no-access-log>]
//   npm run bench:pairs -- --a dist --b dist --b-flags=--no-access-log   one build, two command lines
//
// A and B are built trees (what `npm run build` writes to dist/) inside this project, so that their bare imports
// resolve to its node_modules. Only routes without a token are measured: the servers run without an identity
// provider. On Linux with two cores the server runs on the first and the load generator (this process) on the second.
import { execFileSync, spawn } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import { cpuSeconds, stopChild } from './bench/server-process.js'
import { startNodeFlags } from './start-options.mjs'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    a: { type: 'string' },
    b: { type: 'string' },
    pairs: { type: 'string', default: '12' },
    seconds: { type: 'string', default: '3' },
    path: { type: 'string', default: '/api/greeting/v1/' },
    connections: { type: 'string', default: '50' },
    'a-flags': { type: 'string', default: '' },
    'b-flags': { type: 'string', default: '' },
  },
})
if (values.a === undefined || values.b === undefined) {
  throw new Error('usage: npm run bench:pairs -- --a <built tree> --b <built tree> [--pairs N] [--seconds S] '
    + '[--path P] [-- server flags]')
}
const builds = { A: resolve(values.a, 'cli/main.js'), B: resolve(values.b, 'cli/main.js') }
/** Server flags of one side only, after those of both. */
const sideFlags = {
  A: values['a-flags'].split(' ').filter((flag) => flag !== ''),
  B: values['b-flags'].split(' ').filter((flag) => flag !== ''),
}
const pairs = Number(values.pairs)
const seconds = Number(values.seconds)
const connections = Number(values.connections)
const root = new URL('..', import.meta.url).pathname
// The node options the package's start script gives, as `npm run bench` uses.
const NODE_FLAGS = startNodeFlags(root)
const PIN = process.platform === 'linux' && cpus().length >= 2
if (PIN) execFileSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' })

/** One fresh server of a build: warmed for a second, then measured; CPU microseconds a request, and req/s. */
async function run(main: string, flags: string[]): Promise<{ cpuUs: number, rps: number }> {
  const instance = mkdtempSync(join(tmpdir(), 'bench-pairs-'))
  const command = PIN ? 'taskset' : process.execPath
  const commandArgs = [...PIN ? ['-c', '0', process.execPath] : [], ...NODE_FLAGS, main, '--host', '127.0.0.1',
    '--port', '0', '--instance-path', instance, ...positionals, ...flags]
  // Its log to a file, as `npm run bench` does: a pipe read by this process would load the load generator's core.
  const logFile = join(instance, 'server.log')
  const log = openSync(logFile, 'w')
  const child = spawn(command, commandArgs, { stdio: ['ignore', log, 'inherit'] })
  closeSync(log)
  try {
    let url: string | undefined
    for (let waited = 0; url === undefined; waited += 10) {
      if (child.exitCode !== null || waited > 30_000) {
        throw new Error(`${main} did not start: ${readFileSync(logFile, 'utf8')}`)
      }
      url = /"msg":"Server listening at (http:\/\/[^"]+)"/.exec(readFileSync(logFile, 'utf8'))?.[1]
      await sleep(10)
    }
    await autocannon({ url: `${url}${values.path}`, connections, duration: 1 })
    const before = cpuSeconds([child.pid ?? 0])
    const result = await autocannon({ url: `${url}${values.path}`, connections, duration: seconds })
    const cpu = cpuSeconds([child.pid ?? 0]) - before
    if (result.non2xx > 0 || result.errors > 0) throw new Error(`${main}: ${String(result.non2xx)} non-2xx answers`)
    return { cpuUs: (cpu / result.requests.total) * 1e6, rps: result.requests.average }
  } finally {
    await stopChild(child)
    rmSync(instance, { recursive: true, force: true })
  }
}

const differences: number[] = []
console.log(`A ${builds.A} ${sideFlags.A.join(' ')}\nB ${builds.B} ${sideFlags.B.join(' ')}\n`
  + `${values.path} ${positionals.join(' ')}; ${String(pairs)} pairs, `
  + `${String(seconds)} s each, ${String(connections)} connections${PIN ? ', pinned' : ''}`)
console.log('pair  A µs/req  B µs/req  B-A   (A req/s, B req/s)')
for (let pair = 1; pair <= pairs; pair++) {
  // Alternating which goes first, so that a drift within a pair does not favour one build.
  const order: ('A' | 'B')[] = pair % 2 === 1 ? ['A', 'B'] : ['B', 'A']
  const got: Partial<Record<'A' | 'B', { cpuUs: number, rps: number }>> = {}
  for (const build of order) got[build] = await run(builds[build], sideFlags[build])
  const a = got.A ?? { cpuUs: 0, rps: 0 }
  const b = got.B ?? { cpuUs: 0, rps: 0 }
  differences.push(b.cpuUs - a.cpuUs)
  console.log(`${String(pair).padStart(4)}  ${a.cpuUs.toFixed(1).padStart(8)}  ${b.cpuUs.toFixed(1).padStart(8)}  `
    + `${(b.cpuUs - a.cpuUs).toFixed(1).padStart(5)}   (${a.rps.toFixed(0)}, ${b.rps.toFixed(0)})`)
}
const sorted = [...differences].sort((x, y) => x - y)
const median = sorted.length % 2 === 1 ? sorted[(sorted.length - 1) / 2] ?? 0
  : ((sorted[sorted.length / 2 - 1] ?? 0) + (sorted[sorted.length / 2] ?? 0)) / 2
console.log(`B - A, CPU µs a request: median ${median.toFixed(2)}; B lower in `
  + `${String(differences.filter((d) => d < 0).length)} of ${String(pairs)} pairs`)
