import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { startCli } from './helpers/cli.js'
import { folder } from './helpers/folder.js'
import { send } from './helpers/http.js'
import { Child, freePorts } from './helpers/process.js'
import { requirePart } from './helpers/require.js'
import { pollUntil } from './helpers/wait.js'

// A real Prometheus (Debian's package) scrapes the server's metrics port; PromQL through its HTTP API then counts the
// requests of each route.

const PROMETHEUS = '/usr/bin/prometheus'
const METRICS_AT = /metrics are served at (http:\/\/[^"]+)\/metrics/

interface PromVector {
  status: string
  data: { resultType: string, result: { metric: Record<string, string>, value: [number, string] }[] }
}

async function query(prometheus: string, promql: string): Promise<PromVector> {
  const response = await fetch(`${prometheus}/api/v1/query?query=${encodeURIComponent(promql)}`)
  if (!response.ok) throw new Error(`${promql}: ${response.status} ${await response.text()}`)
  return await response.json() as PromVector
}

t.test('Prometheus scrapes the metrics port; PromQL counts the requests of each route', async (t) => {
  if (!requirePart(t, existsSync(PROMETHEUS), `Prometheus (${PROMETHEUS}, Debian's prometheus package)`)) return
  const dir = folder(t)
  const { cli, url } = await startCli(t, ['--host', '127.0.0.1', '--port', '0', '--instance-path', dir, '--metrics',
    '--metrics-port', '0'], { cwd: dir })
  const [, metricsUrl = ''] = await cli.waitForLine(METRICS_AT)
  const target = new URL(metricsUrl).host

  const [port = 0] = await freePorts(1)
  const config = join(dir, 'prometheus.yml')
  writeFileSync(config, [
    'global:',
    '  scrape_interval: 1s',
    '  evaluation_interval: 1s',
    'scrape_configs:',
    '  - job_name: mrmat',
    '    metrics_path: /metrics',
    '    static_configs:',
    `      - targets: ['${target}']`,
    '',
  ].join('\n'))
  const prometheus = new Child(t, PROMETHEUS, [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`,
    `--web.listen-address=127.0.0.1:${String(port)}`, '--log.level=warn'], { coverage: false })
  const api = `http://127.0.0.1:${String(port)}`
  await pollUntil(async () => {
    try {
      return (await fetch(`${api}/-/ready`)).status === 200
    } catch {
      return false
    }
  }, 30_000, 'Prometheus ready')

  for (let i = 0; i < 5; i++) t.equal((await send(url, '/api/greeting/v1/')).status, 200)
  for (let i = 0; i < 3; i++) t.equal((await send(url, `/api/greeting/v2/?name=n${String(i)}`)).status, 200)
  t.equal((await send(url, '/api/resource/v1/42')).status, 401)
  t.equal((await send(url, '/no/such/thing')).status, 404)

  const promql = 'sum by (route, status_class) (http_request_duration_seconds_count{job="mrmat", method="GET"})'
  const expected: Record<string, number> = {
    '/api/greeting/v1 2xx': 5, '/api/greeting/v2 2xx': 3, '/api/resource/v1/:id 4xx': 1, 'unmatched 4xx': 1,
  }
  const counts = await pollUntil(async () => {
    const answer = await query(api, promql)
    const seen = Object.fromEntries(answer.data.result.map(({ metric, value }) =>
      [`${metric.route ?? ''} ${metric.status_class ?? ''}`, Number(value[1])]))
    return Object.entries(expected).every(([key, count]) => seen[key] === count) && seen
  }, 30_000, `Prometheus' counts ${JSON.stringify(expected)}`, 500)
  for (const [key, count] of Object.entries(expected)) t.equal(counts[key], count, `${key}: ${String(count)}`)
  t.notOk(Object.keys(counts).some((key) => key.includes('/no/such') || key.includes('/42')), 'no raw URL')

  const up = await query(api, 'up{job="mrmat"}')
  t.equal(up.data.result[0]?.value[1], '1', 'the target is up')
  const p99 = await query(api, 'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket'
    + '{job="mrmat", route="/api/greeting/v1"}[1m])))')
  t.equal(p99.status, 'success', 'a latency quantile is computable from the histogram')
  t.equal((await cli.stop()).code, 0)
  prometheus.process.kill('SIGTERM')
  await prometheus.waitForExit()
})
