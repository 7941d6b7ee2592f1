import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { context, SpanStatusCode, trace, type Span, type TracerProvider } from '@opentelemetry/api'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import { PACKAGE_NAME, packageVersion } from '../lib/package-info.js'
import { TRACE_IDS, type RequestTracer, type TraceIds, type WorkSpan } from '../lib/observability.js'
import type { Database } from './database/database.js'

export interface TracingOptions {
  /** The provider spans go to; the global one (registered by the SDK) by default. */
  tracerProvider?: TracerProvider
}

declare module 'fastify' {
  interface FastifyRequest {
    [TRACE_IDS]: TraceIds | null
  }
}

/** A statement's span name: its first keyword (SELECT, INSERT, BEGIN, …), as OpenTelemetry's database spans have it. */
function operationOf(sql: string): string {
  const match = /^\s*([A-Za-z]+)/.exec(sql)
  return (match?.[1] ?? 'query').toUpperCase()
}

const DB_SYSTEMS = { sqlite: 'sqlite', postgres: 'postgresql', mysql: 'mysql' } as const

function ended(span: Span, error?: unknown): void {
  if (error !== undefined) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message })
    span.setAttribute('error.type', (error as { reason?: string, code?: string }).reason
      ?? (error as { code?: string }).code ?? (error as Error).name)
  }
  span.end()
}

/**
 * OpenTelemetry tracing of the server, through @fastify/otel: a span for each request (its parent taken from a W3C
 * `traceparent` header), one for its handler, one for each bearer-token check (with `mrmat.auth.cache_hit`) and one for
 * each database statement. Each request's trace and span ids go into its access line and its log lines. Spans go to
 * the tracer provider the process registered (see cli/tracing.ts); load this module only when tracing is wanted.
 */
async function tracing(fastify: FastifyInstance, options: TracingOptions): Promise<void> {
  // Hooks are not traced one by one (a span each for request ids, load shedding, …): the request, its handler, and
  // the work that takes time are.
  const instrumentation = new FastifyOtelInstrumentation({
    instrumentHooks: false,
    // The path without the query string, which may hold secrets (as the access line has it).
    requestHook: (span, request) => {
      const query = request.url.indexOf('?')
      if (query >= 0) span.setAttribute('url.path', request.url.slice(0, query))
    },
  })
  if (options.tracerProvider !== undefined) instrumentation.setTracerProvider(options.tracerProvider)
  await fastify.register(instrumentation.plugin())
  const tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer(PACKAGE_NAME, packageVersion)

  fastify.decorateRequest(TRACE_IDS, null)
  // Runs inside the context @fastify/otel's own onRequest hook opened for the request's span.
  fastify.addHook('onRequest', function recordTraceIds(request, _reply, done) {
    const span = trace.getSpan(context.active())
    if (span !== undefined) {
      const { traceId, spanId } = span.spanContext()
      const ids: TraceIds = { trace_id: traceId, span_id: spanId }
      request[TRACE_IDS] = ids
      request.log = request.log.child(ids)
    }
    done()
  })

  const requestTracer: RequestTracer = {
    startSpan(request: FastifyRequest, name: string, attributes?: Record<string, string | number | boolean>): WorkSpan {
      const parent = request.opentelemetry().context ?? context.active()
      const span = tracer.startSpan(name, attributes === undefined ? {} : { attributes }, parent)
      return {
        setAttribute: (key, value) => { span.setAttribute(key, value) },
        end: (error?: unknown) => { ended(span, error) },
      }
    },
    traceDatabase: (database: Database) => { traceStatements(database, tracer) },
  }
  fastify.decorate('requestTracer', requestTracer)
}

type Tracer = ReturnType<TracerProvider['getTracer']>

function statementSpan(tracer: Tracer, database: Database, sql: string): Span {
  return tracer.startSpan(operationOf(sql), {
    attributes: { 'db.system.name': DB_SYSTEMS[database.dialect], 'db.query.text': sql },
  }, context.active())
}

const TRACED = Symbol.for('mrmat-ts-api-fastify.traced')
type Traced = Record<string | symbol, unknown>

/**
 * A span for each statement, a child of whatever span is active (the handler's): better-sqlite3's prepared statements
 * as they run, pg's and mysql2's pool queries. Parameters are not recorded, only the statement's text.
 */
function traceStatements(database: Database, tracer: Tracer): void {
  const marked = database as unknown as Traced
  if (marked[TRACED] === true) return
  marked[TRACED] = true
  if (database.dialect === 'sqlite') {
    const { connection } = database
    const prepare = connection.prepare.bind(connection)
    connection.prepare = ((source: string) => {
      const statement = prepare(source)
      for (const method of ['run', 'get', 'all', 'iterate'] as const) {
        const methods = statement as unknown as Record<string, (...args: unknown[]) => unknown>
        const original = methods[method]
        if (original === undefined) continue
        methods[method] = function traced(this: unknown, ...args: unknown[]) {
          const span = statementSpan(tracer, database, source)
          try {
            const result = original.apply(this, args)
            ended(span)
            return result
          } catch (error) {
            ended(span, error)
            throw error
          }
        }
      }
      return statement
    }) as typeof connection.prepare
    return
  }
  if (database.dialect === 'postgres') {
    traceQueries(database.pool as unknown as Traced, ['query'], tracer, database)
    return
  }
  // mysql2's pool runs every statement, its own query() and execute() too, on a pooled connection: those are traced,
  // the ones open now and each one opened later.
  const pool = database.pool.pool as unknown as {
    _allConnections?: { toArray(): object[] }
    on(event: 'connection', listener: (connection: object) => void): unknown
  }
  const traceConnection = (connection: object): void => {
    traceQueries(connection as Traced, ['query', 'execute'], tracer, database)
  }
  for (const connection of pool._allConnections?.toArray() ?? []) traceConnection(connection)
  pool.on('connection', traceConnection)
}

/** Wraps the query methods of a pool or connection: a span from the call until its promise, callback or events end. */
function traceQueries(target: Traced, methods: string[], tracer: Tracer, database: Database): void {
  if (target[TRACED] === true) return
  target[TRACED] = true
  for (const method of methods) {
    const original = target[method]
    if (typeof original !== 'function') continue
    target[method] = function traced(this: unknown, ...args: unknown[]): unknown {
      const first = args[0]
      const sql = typeof first === 'string' ? first
        : (first as { text?: string }).text ?? (first as { sql?: string }).sql ?? ''
      const span = statementSpan(tracer, database, sql)
      let open = true
      const end = (error?: unknown): void => {
        if (!open) return
        open = false
        ended(span, error ?? undefined)
      }
      const last = args.at(-1)
      if (typeof last === 'function') {
        args[args.length - 1] = (error: unknown, ...rest: unknown[]) => {
          end(error)
          ;(last as (...given: unknown[]) => void)(error, ...rest)
        }
      }
      const result = (original as (...given: unknown[]) => unknown).apply(this, args)
      if (typeof last === 'function') return result
      // mysql2's Query is an event emitter whose then() throws: asked first. pg's pool answers a promise.
      const events = result as { once?: (event: string, listener: (error?: unknown) => void) => unknown } | undefined
      if (typeof events?.once === 'function') {
        events.once('end', () => { end() })
        events.once('error', (error) => { end(error) })
      } else if (typeof (result as Promise<unknown> | undefined)?.then === 'function') {
        (result as Promise<unknown>).then(() => { end() }, (error: unknown) => { end(error) })
      } else {
        end()
      }
      return result
    }
  }
}

export default fp(tracing, { name: 'mrmat-tracing', fastify: '5.x' })
