import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { tracingConfigured } from '#src/lib/observability.js'
import { startOtlpReceiver, type ReceivedSpan } from './fixtures/otlp-receiver.js'
import { startTestProvider } from './fixtures/oidc-provider.js'
import { startCli } from './helpers/cli.js'
import { folder } from './helpers/folder.js'
import { send } from './helpers/http.js'
import { logLines } from './helpers/process.js'
import { pollUntil } from './helpers/wait.js'

// OpenTelemetry through the real command line: a real OTLP/HTTP receiver gets the spans of requests that came with a
// W3C traceparent, and the log lines carry their ids.

const hex = (bytes: number): string => randomBytes(bytes).toString('hex')

t.test('which OTEL_* variables turn tracing on', async (t) => {
  t.notOk(tracingConfigured({}), 'nothing set')
  t.ok(tracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }))
  t.ok(tracingConfigured({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }))
  t.notOk(tracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: ' ' }), 'blank')
  t.notOk(tracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }))
  t.notOk(tracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' }))
  t.notOk(tracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'console' }),
    'another exporter than OTLP')
  t.ok(tracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'otlp' }))
})

/** The spans of a trace, once `done` says all of them have arrived. */
async function trace(spans: ReceivedSpan[], traceId: string, done: (spans: ReceivedSpan[]) => boolean):
Promise<ReceivedSpan[]> {
  return pollUntil(() => {
    const mine = spans.filter((span) => span.traceId === traceId)
    return done(mine) && mine
  }, 15_000, `the spans of trace ${traceId}`)
}

function one(t: Test, spans: ReceivedSpan[], name: string | RegExp): ReceivedSpan {
  const found = spans.filter((span) => (typeof name === 'string' ? span.name === name : name.test(span.name)))
  t.equal(found.length, 1, `one span ${String(name)}`)
  const [span] = found
  if (span === undefined) throw new Error(`no span ${String(name)} among ${spans.map((s) => s.name).join(', ')}`)
  return span
}

t.test('a request with a traceparent: its spans, their parents, and its log lines', async (t) => {
  const receiver = await startOtlpReceiver(t)
  const provider = await startTestProvider(t)
  const dir = folder(t)
  const { cli, url } = await startCli(t, ['--host', '127.0.0.1', '--port', '0', '--instance-path', dir, '--issuer',
    provider.issuer, '--audience', provider.audience], {
    cwd: dir,
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '100', OTEL_SERVICE_NAME: 'mrmat-test' },
  })
  const token = await provider.jwt()

  const created = { traceId: hex(16), parent: hex(8) }
  const answer = await send<{ id: number }>(url, '/api/resource/v1/', {
    method: 'POST', token, json: { name: 'traced' },
    headers: { traceparent: `00-${created.traceId}-${created.parent}-01` },
  })
  t.equal(answer.status, 201)
  const spans = await trace(receiver.spans, created.traceId, (list) => list.some((span) => span.name === 'request')
    && list.some((span) => span.name === 'INSERT'))
  const request = one(t, spans, 'request')
  t.equal(request.parentSpanId, created.parent, 'the request\'s span is the upstream span\'s child')
  t.equal(request.kind, 2, 'a server span')
  t.match(request.attributes, { 'http.request.method': 'POST', 'http.route': '/api/resource/v1',
    'http.response.status_code': 201 })
  t.equal(request.resource['service.name'], 'mrmat-test', 'OTEL_SERVICE_NAME names the service')
  const verify = one(t, spans, 'verify bearer token')
  t.equal(verify.parentSpanId, request.spanId, 'the token check is the request\'s child')
  t.equal(verify.attributes['mrmat.auth.cache_hit'], false, 'a token not seen before')
  const handler = one(t, spans, /^handler - /)
  t.equal(handler.parentSpanId, request.spanId, 'the handler is the request\'s child')
  const statements = spans.filter((span) => span.attributes['db.system.name'] === 'sqlite')
  t.ok(statements.some((span) => span.name === 'INSERT'), 'the insert has a span')
  for (const statement of statements) {
    t.equal(statement.parentSpanId, handler.spanId, `${statement.name} is the handler's child`)
    t.match(statement.attributes['db.query.text'], new RegExp(`^${statement.name}`, 'i'))
  }
  t.notOk(spans.some((span) => span.parentSpanId === undefined), 'no span of the trace is a root: upstream is')

  const read = { traceId: hex(16), parent: hex(8) }
  t.equal((await send(url, `/api/resource/v1/${String(answer.body?.id)}`, { token,
    headers: { traceparent: `00-${read.traceId}-${read.parent}-01` } })).status, 200)
  const readSpans = await trace(receiver.spans, read.traceId, (list) => list.some((span) => span.name === 'SELECT')
    && list.some((span) => span.name === 'request'))
  t.equal(one(t, readSpans, 'verify bearer token').attributes['mrmat.auth.cache_hit'], true, 'from the cache')
  const readHandler = one(t, readSpans, /^handler - /)
  t.ok(readSpans.filter((span) => span.name === 'SELECT').every((span) => span.parentSpanId === readHandler.spanId))

  const refusedTrace = hex(16)
  const refused = await send(url, '/api/resource/v1/', { headers: { traceparent: `00-${refusedTrace}-${hex(8)}-01` } })
  t.equal(refused.status, 401)
  const untraced = await send(url, '/api/greeting/v2/?name=Secret')
  t.equal(untraced.status, 200)

  const lines = await pollUntil(() => {
    const all = logLines(cli.stdout)
    return all.some((line) => line.reqId === untraced.headers['x-request-id'] && line.msg === 'request') && all
  }, 5000, 'the access lines')
  const access = lines.find((line) => line.reqId === answer.headers['x-request-id'] && line.msg === 'request')
  t.match(access, { trace_id: created.traceId, span_id: request.spanId, status: 201 }, 'the access line')
  const refusal = lines.find((line) => line.reqId === refused.headers['x-request-id'] && line.msg === 'request refused')
  t.match(refusal, { trace_id: refusedTrace, status: 401 }, 'a line the request logs itself')
  const fresh = lines.find((line) => line.reqId === untraced.headers['x-request-id'] && line.msg === 'request')
  t.match(fresh, { trace_id: /^[0-9a-f]{32}$/ }, 'a request without a traceparent begins a trace')
  const root = await trace(receiver.spans, String(fresh?.trace_id), (list) => list.some((s) => s.name === 'request'))
  const rootSpan = one(t, root, 'request')
  t.equal(rootSpan.parentSpanId, undefined, 'whose request span is its root')
  t.equal(rootSpan.attributes['url.path'], '/api/greeting/v2/', 'the path without the query string')
  t.notOk(JSON.stringify(root).includes('Secret'), 'no span holds the query string')
  t.same(receiver.refused, [], 'every export was OTLP/HTTP JSON to /v1/traces')
  t.equal((await cli.stop()).code, 0)
})

t.test('without an exporter configured: no trace ids, nothing exported', async (t) => {
  const receiver = await startOtlpReceiver(t)
  const dir = folder(t)
  const { cli, url } = await startCli(t, ['--host', '127.0.0.1', '--port', '0', '--instance-path', dir],
    { cwd: dir, env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_SDK_DISABLED: 'true' } })
  const answer = await send(url, '/api/greeting/v1/', { headers: { traceparent: `00-${hex(16)}-${hex(8)}-01` } })
  t.equal(answer.status, 200)
  const line = await pollUntil(() => logLines(cli.stdout).find((entry) => entry.reqId === answer.headers['x-request-id']
    && entry.msg === 'request'), 5000, 'the access line')
  t.notOk('trace_id' in line, 'no trace id')
  t.equal((await cli.stop()).code, 0)
  t.same(receiver.spans, [], 'nothing was exported')
})
