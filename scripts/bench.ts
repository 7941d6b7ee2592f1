// npm run bench: throughput of the APIs against a bare Fastify route measured in the same run, as
// ratios. BENCH_DURATION (seconds per run, default 5) and BENCH_CONNECTIONS (default 10) tune it.
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import autocannon from 'autocannon'

interface Targets {
  baselineUrl: string
  appUrl: string
  token: string
  resourceId: number
}

interface Scenario {
  name: string
  url: (targets: Targets) => string
  options?: (targets: Targets) => Partial<autocannon.Options>
  /** The ratio to the baseline the issues hold this route to, if any. */
  floor?: number
}

const duration = Number(process.env.BENCH_DURATION ?? 5)
const connections = Number(process.env.BENCH_CONNECTIONS ?? 10)

const bearer = (targets: Targets) => ({ headers: { authorization: `Bearer ${targets.token}` } })
// Shared by the warm-up and the measured run: every create is a new name, a real insert, never a 409.
let created = 0

const scenarios: Scenario[] = [
  { name: 'greeting v1', url: (t) => `${t.appUrl}/api/greeting/v1/` },
  { name: 'greeting v3 (bearer token)', url: (t) => `${t.appUrl}/api/greeting/v3/`, options: bearer, floor: 0.85 },
  {
    name: 'resource v1 get by id',
    url: (t) => `${t.appUrl}/api/resource/v1/${String(t.resourceId)}`,
    options: bearer,
    floor: 0.75,
  },
  {
    name: 'resource v1 create',
    url: (t) => `${t.appUrl}/api/resource/v1/`,
    floor: 0.4,
    options: (t) => ({
      method: 'POST',
      headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json' },
      requests: [{
        setupRequest: (request) => ({ ...request, body: JSON.stringify({ name: `bench-${String(created++)}` }) }),
      }],
    }),
  },
]

async function measure(
  url: string,
  options: Partial<autocannon.Options> = {},
): Promise<{ rps: number, errors: number, non2xx: number }> {
  const result = await autocannon({ url, connections, duration, ...options })
  return { rps: result.requests.average, errors: result.errors + result.timeouts, non2xx: result.non2xx }
}

async function startServers(): Promise<{ targets: Targets, stop: () => Promise<void> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/bench-server.ts'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve)
    child.once('exit', (code) => { reject(new Error(`the bench server exited with ${String(code)}`)) })
  })
  return {
    targets: JSON.parse(line) as Targets,
    stop: async () => {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    },
  }
}

const { targets, stop } = await startServers()
try {
  // Warm both servers (JIT, caches, the key fetch) before anything counts.
  await measure(targets.baselineUrl, { duration: 1 })
  for (const s of scenarios) await measure(s.url(targets), { ...s.options?.(targets), duration: 1 })

  const before = await measure(targets.baselineUrl)
  const results = []
  for (const s of scenarios) results.push({ scenario: s, ...await measure(s.url(targets), s.options?.(targets)) })
  const after = await measure(targets.baselineUrl)
  // The baseline is measured before and after, so that drift over the run shows and averages out.
  const baseline = (before.rps + after.rps) / 2

  const rows = [
    {
      route: 'bare Fastify (baseline)',
      'req/s': Math.round(baseline),
      ratio: '1.00',
      floor: '',
      verdict: '',
      'errors/non-2xx': `${String(before.errors + after.errors)}/${String(before.non2xx + after.non2xx)}`,
    },
    ...results.map((r) => {
      const ratio = r.rps / baseline
      return {
        route: r.scenario.name,
        'req/s': Math.round(r.rps),
        ratio: ratio.toFixed(2),
        floor: r.scenario.floor?.toFixed(2) ?? '',
        verdict: r.scenario.floor === undefined ? '' : ratio >= r.scenario.floor ? 'ok' : 'BELOW',
        'errors/non-2xx': `${String(r.errors)}/${String(r.non2xx)}`,
      }
    }),
  ]
  console.log(
    `\n${String(connections)} connections, ${String(duration)} s a run, Node ${process.version}; `
    + `baseline ${String(Math.round(before.rps))} then ${String(Math.round(after.rps))} req/s`,
  )
  console.table(rows)
} finally {
  await stop()
}
