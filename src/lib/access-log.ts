import {
  LogController, type FastifyBaseLogger, type FastifyReply, type FastifyRequest, type FastifyServerOptions,
} from 'fastify'
import { pino } from 'pino'
import { TRACE_IDS, type TraceIds } from './observability.js'

type ChildLoggerFactory = NonNullable<FastifyServerOptions['childLoggerFactory']>

/**
 * Writes one whole JSON line at `level` for `logger`, as pino would: `fields` is the inside of the line's object after
 * the logger's own fields (time and bindings), as `"key":value,...`. See registerLineWriter.
 */
export type LineWriter = (logger: FastifyBaseLogger, level: number, fields: string, msg: string) => void

const lineWriters = new WeakMap<object, LineWriter>()
const { streamSym } = pino.symbols

/**
 * Declares that every logger writing to the pino destination `stream` writes plain JSON lines (no formatters,
 * mixins, hooks, redaction or renamed keys), and how to write one directly: the access line is then composed as a
 * string, about a microsecond a request less than handing pino an object to serialise. The CLI's JSON logger does this
 * (Fastify's own child of it, which adds serializers for keys the line does not have, writes to the same stream);
 * any other logger gets the line through pino.
 */
export function registerLineWriter(stream: object, write: LineWriter): void {
  lineWriters.set(stream, write)
}

// A JSON string that needs no escaping: printable ASCII without quote or backslash (request ids, methods and
// addresses always; paths nearly always).
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/

function jsonString(value: string): string {
  return PLAIN.test(value) ? `"${value}"` : JSON.stringify(value)
}

/**
 * A duration in milliseconds rounded to hundredths, as JSON writes the number pino would be given
 * (`Math.round(ms * 100) / 100`: 0.01, 1.5, 2): built from the whole hundredths, integers V8 turns into text on its
 * fast path. The rounded number itself is a fraction, and turning a fraction into its shortest text took V8's
 * runtime about 0.4 µs a line (perf, greeting v1). A duration that is not a small whole count of hundredths is left
 * to String().
 */
export function durationText(ms: number): string {
  const hundredths = Math.round(ms * 100)
  if (!(hundredths >= 0 && hundredths <= 0x3fffffff)) return String(hundredths / 100)
  const rest = hundredths % 100
  const whole = String((hundredths - rest) / 100)
  if (rest === 0) return whole
  return `${whole}.${rest < 10 ? `0${String(rest)}` : String(rest % 10 === 0 ? rest / 10 : rest)}`
}

/**
 * Fastify's request logging as one line a request, when it is answered: the request id, method, path (never the
 * query string, which may hold secrets), status, duration, the client's address (as --trust-proxy allows), and the
 * trace and span ids while tracing is on; instead
 * of Fastify's two lines ("incoming request", "request completed") with whole request and response objects. Written
 * by the server's logger with the id as a field, so that the request's own logger is not made for it.
 */
export class AccessLog extends LogController {
  override incomingRequest(): void {
    // The one line is written when the request is answered.
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const url = request.url
    const query = url.indexOf('?')
    const path = query < 0 ? url : url.slice(0, query)
    const log = request.server.log
    // Set only while tracing is on (see plugins/tracing.ts).
    const ids = (request as unknown as Record<symbol, TraceIds | null | undefined>)[TRACE_IDS]
    const stream = (log as unknown as Record<symbol, object | undefined>)[streamSym]
    const write = stream === undefined ? undefined : lineWriters.get(stream)
    if (write !== undefined && error == null && (ids === undefined || ids === null)) {
      if (!enabled(log, 'info')) return
      const ip = request.ip as string | undefined
      write(log, SEVERITY.info, `"reqId":${jsonString(request.id)},"method":${jsonString(request.method)},`
        + `"path":${jsonString(path)},"status":${String(reply.statusCode)},`
        + `"durationMs":${durationText(reply.elapsedTime)}`
        + (ip === undefined ? '' : `,"remoteAddress":${jsonString(ip)}`), 'request')
      return
    }
    const line = {
      reqId: request.id,
      method: request.method,
      path,
      status: reply.statusCode,
      durationMs: Math.round(reply.elapsedTime * 100) / 100,
      remoteAddress: request.ip,
    }
    const traced = ids === undefined || ids === null ? line : { ...line, ...ids }
    if (error == null) log.info(traced, 'request')
    else log.error({ ...traced, err: error }, 'request failed while answering')
  }
}

/** The log controller of a server: the access log, or none at all (--no-access-log, e.g. behind nginx's own). */
export function logController(accessLog: boolean): LogController {
  return accessLog ? new AccessLog() : new LogController({ disableRequestLogging: true })
}

/** pino's levels by severity; a logger at `silent`, or at a level not here, writes nothing below it. */
const SEVERITY = { fatal: 60, error: 50, warn: 40, info: 30, debug: 20, trace: 10 } as const

type Level = keyof typeof SEVERITY

function enabled(logger: FastifyBaseLogger, level: Level): boolean {
  const threshold = SEVERITY[logger.level as Level] as number | undefined
  return threshold !== undefined && SEVERITY[level] >= threshold
}

/** A request's logger that becomes a pino child the first time it writes (see lazyChildLogger). */
class LazyChild {
  #child: FastifyBaseLogger | undefined

  constructor(
    readonly parent: FastifyBaseLogger,
    readonly bindings: Record<string, unknown>,
    readonly options: object,
  ) {}

  get level(): string {
    return this.#child?.level ?? this.parent.level
  }

  set level(level: string) {
    this.#made().level = level
  }

  #made(): FastifyBaseLogger {
    this.#child ??= this.parent.child(this.bindings, this.options)
    return this.#child
  }

  #write(level: Level, args: unknown[]): void {
    if (this.#child === undefined && !enabled(this.parent, level)) return
    const target = this.#made()
    const write: (...given: unknown[]) => void = target[level]
    write.apply(target, args)
  }

  child(bindings: Record<string, unknown>, options?: object): FastifyBaseLogger {
    return this.#made().child(bindings, options)
  }

  fatal(...args: unknown[]): void { this.#write('fatal', args) }
  error(...args: unknown[]): void { this.#write('error', args) }
  warn(...args: unknown[]): void { this.#write('warn', args) }
  info(...args: unknown[]): void { this.#write('info', args) }
  debug(...args: unknown[]): void { this.#write('debug', args) }
  trace(...args: unknown[]): void { this.#write('trace', args) }
  silent(): void {
    // Writes nothing, as pino's own silent does.
  }
}

/**
 * For Fastify's childLoggerFactory: a request's logger (request.log, with its id bound) is made the first time a line
 * is written through it. Most requests write none (the access line is the server logger's), and making a pino child
 * for each would cost a couple of microseconds a request for nothing.
 */
export const lazyChildLogger: ChildLoggerFactory = function lazyChildLogger(_logger, bindings, options) {
  // The server's log, not the logger Fastify passes: Fastify may have been given none (see createServer).
  return new LazyChild(this.log, bindings, options)
}
