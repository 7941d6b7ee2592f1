import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node'
import t from 'tap'
import { freshDatabase, type Dialect } from './fixtures/databases.js'
import { startTestProvider } from './fixtures/oidc-provider.js'
import { build } from './helpers/app.js'
import { settingsFromSecrets } from './helpers/auth.js'
import { send } from './helpers/http.js'

// The tracing plugin in-process, on PostgreSQL and MySQL: each statement of a request is a span, a child of the
// request's handler, as on SQLite (tracing.test.ts runs that through the command line).

const exporter = new InMemorySpanExporter()
const tracerProvider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
// The context manager and the propagator, as the command line's SDK registers them.
tracerProvider.register()
t.teardown(() => tracerProvider.shutdown())

const SYSTEMS: Record<Exclude<Dialect, 'sqlite'>, string> = { postgres: 'postgresql', mysql: 'mysql' }

for (const dialect of ['postgres', 'mysql'] as const) {
  t.test(`${dialect}: a span for each statement, the handler's child`, async (t) => {
    const database = await freshDatabase(t, dialect)
    if (database === undefined) return
    const provider = await startTestProvider(t)
    const app = await build(t, { database, tracing: { tracerProvider }, auth: await settingsFromSecrets(t, provider) })
    const token = await provider.jwt()
    exporter.reset()
    const traceId = 'ab'.repeat(16)
    const created = await send<{ id: number }>(app, '/api/resource/v1/', { method: 'POST', token,
      json: { name: 'traced' }, headers: { traceparent: `00-${traceId}-${'cd'.repeat(8)}-01` } })
    t.equal(created.status, 201)
    const spans = exporter.getFinishedSpans().filter((span) => span.spanContext().traceId === traceId)
    const request = spans.find((span) => span.name === 'request')
    const handler = spans.find((span) => span.name.startsWith('handler - '))
    t.equal(request?.parentSpanContext?.spanId, 'cd'.repeat(8), 'the request span\'s parent is upstream\'s')
    t.equal(handler?.parentSpanContext?.spanId, request?.spanContext().spanId, 'the handler is the request\'s child')
    const statements = spans.filter((span) => span.attributes['db.system.name'] === SYSTEMS[dialect])
    t.ok(statements.length >= 1, `statements traced: ${statements.map((span) => span.name).join(', ')}`)
    t.ok(statements.some((span) => span.name === 'INSERT' || span.name === 'WITH'), 'the write among them')
    for (const span of statements) {
      t.equal(span.parentSpanContext?.spanId, handler?.spanContext().spanId, `${span.name}: the handler's child`)
      t.type(span.attributes['db.query.text'], 'string')
      t.notOk(String(span.attributes['db.query.text']).includes('traced'), 'no value, only placeholders')
    }
  })
}
