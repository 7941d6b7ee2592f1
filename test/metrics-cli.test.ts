import t from 'tap'
import { parseCommandLine } from '#src/cli/command-line.js'
import { startCli } from './helpers/cli.js'
import { folder } from './helpers/folder.js'
import { send } from './helpers/http.js'
import { valueOf } from './helpers/metrics.js'
import { logLines, type Child } from './helpers/process.js'
import { pollUntil } from './helpers/wait.js'

// --metrics and --metrics-port in the built command line: the metrics on a port of their own, apart from the API, and
// with --workers one scrape of the primary for the whole server.

const METRICS_AT = /metrics are served at (http:\/\/[^"]+)\/metrics/
const COUNT = 'http_request_duration_seconds_count'

async function metricsOf(url: string): Promise<{ status: number, contentType: string, text: string }> {
  const response = await fetch(`${url}/metrics`)
  const contentType = response.headers.get('content-type') ?? ''
  return { status: response.status, contentType, text: await response.text() }
}

t.test('--metrics-port without --metrics, and --metrics with --workers but no port, are usage errors', async (t) => {
  const instance = ['--instance-path', folder(t)]
  await t.rejects(parseCommandLine([...instance, '--metrics-port', '9464'], {}),
    { message: /--metrics-port: .*add --metrics/, exitCode: 2 })
  await t.rejects(parseCommandLine([...instance, '--metrics', '--workers', '2'], {}),
    { message: /--metrics with --workers: .*add --metrics-port/, exitCode: 2 })
  await t.rejects(parseCommandLine([...instance, '--metrics', '--metrics-port', '70000'], {}),
    { message: /--metrics-port/, exitCode: 2 })
  const invocation = await parseCommandLine([...instance], { MRMAT_METRICS: 'true', MRMAT_METRICS_PORT: '9464' })
  t.match(invocation, { config: { metrics: true, metricsPort: 9464, metricsHost: '127.0.0.1' } }, 'from variables')
})

/**
 * Waits until readiness, which includes the load check, passes: a server just started on a busy machine can have its
 * event loop held by the start through a whole sample, and it then sheds its first requests (test/pressure.test.ts),
 * which would be counted here as 5xx. Readiness is counted under a route of its own.
 */
async function servingWithoutShedding(url: string): Promise<void> {
  await pollUntil(async () => (await send(url, '/healthz/readiness')).status === 200, 10_000, 'ready, not shedding')
}

t.test('--metrics --metrics-port: the metrics on their own loopback port, never on the public one', async (t) => {
  const dir = folder(t)
  const { cli, url } = await startCli(t, ['--host', '127.0.0.1', '--port', '0', '--instance-path', dir, '--metrics',
    '--metrics-port', '0'], { cwd: dir })
  const [, metricsUrl = ''] = await cli.waitForLine(METRICS_AT)
  t.match(metricsUrl, /^http:\/\/127\.0\.0\.1:\d+$/, 'on loopback by default')
  t.not(metricsUrl, url)
  await servingWithoutShedding(url)
  for (let i = 0; i < 4; i++) t.equal((await send(url, '/api/greeting/v1/')).status, 200)
  const onPublic = await fetch(`${url}/metrics`)
  t.equal(onPublic.status, 404, 'the public port has no /metrics')
  t.match(onPublic.headers.get('content-type'), /^application\/problem\+json/)

  const scraped = await metricsOf(metricsUrl)
  t.equal(scraped.status, 200)
  t.match(scraped.contentType, /^text\/plain; version=0\.0\.4/)
  t.equal(valueOf(scraped.text, COUNT, { method: 'GET', route: '/api/greeting/v1', status_class: '2xx' }), 4)
  t.equal(valueOf(scraped.text, COUNT, { route: 'unmatched', status_class: '4xx' }), 1, 'the public /metrics: a 404')
  t.ok(valueOf(scraped.text, 'process_resident_memory_bytes') !== undefined, 'process metrics')

  const elsewhere = await fetch(`${metricsUrl}/other`)
  t.equal(elsewhere.status, 404)
  t.match(elsewhere.headers.get('content-type'), /^application\/problem\+json/)
  t.match(await elsewhere.json(), { status: 404, title: 'Not Found', instance: '/other' })
  t.equal((await cli.stop()).code, 0)
})

t.test('--metrics alone: /metrics on the public port', async (t) => {
  const dir = folder(t)
  const { cli, url } = await startCli(t, ['--host', '127.0.0.1', '--port', '0', '--instance-path', dir, '--metrics'],
    { cwd: dir })
  await servingWithoutShedding(url)
  t.equal((await send(url, '/api/greeting/v2/?name=Ann')).status, 200)
  const scraped = await metricsOf(url)
  t.equal(scraped.status, 200)
  t.equal(valueOf(scraped.text, COUNT, { route: '/api/greeting/v2', status_class: '2xx' }), 1)
  t.equal((await cli.stop()).code, 0)
})

/** The pids whose access lines logged these request ids so far. */
function servingPids(cli: Child): Set<number> {
  return new Set(logLines(cli.stdout).filter((line) => line.msg === 'request' && line.path === '/api/greeting/v1/')
    .map((line) => line.pid as number))
}

t.test('--workers 2: one scrape of the primary holds every worker\'s requests', async (t) => {
  const dir = folder(t)
  const { cli, url } = await startCli(t, ['--host', '127.0.0.1', '--port', '0', '--instance-path', dir, '--workers',
    '2', '--metrics', '--metrics-port', '0'], { cwd: dir })
  const [, metricsUrl = ''] = await cli.waitForLine(METRICS_AT)
  t.not(metricsUrl, url)
  await pollUntil(() => logLines(cli.stdout).filter((line) => /is serving$/.test(String(line.msg))).length >= 2,
    40_000, 'both workers serving')
  // Each request on a connection of its own: the kernel hands connections to either worker.
  let sent = 0
  await pollUntil(async () => {
    for (let i = 0; i < 10; i++) {
      if ((await send(url, '/api/greeting/v1/')).status === 200) sent++
    }
    return servingPids(cli).size >= 2
  }, 60_000, 'both workers answering', 0)
  const scraped = await pollUntil(async () => {
    const answer = await metricsOf(metricsUrl)
    return answer.status === 200 && answer
  }, 10_000, 'a scrape')
  t.equal(valueOf(scraped.text, COUNT, { method: 'GET', route: '/api/greeting/v1', status_class: '2xx' }), sent,
    `all ${sent} requests, served by ${servingPids(cli).size} workers`)
  t.equal(valueOf(scraped.text, 'nodejs_heap_size_total_bytes') !== undefined, true, 'process metrics, summed')
  t.equal((await cli.stop()).code, 0)
})
