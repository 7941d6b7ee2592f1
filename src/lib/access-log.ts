import {
  LogController, type FastifyBaseLogger, type FastifyReply, type FastifyRequest, type FastifyServerOptions,
} from 'fastify'
import { TRACE_IDS, type TraceIds } from './observability.js'

type ChildLoggerFactory = NonNullable<FastifyServerOptions['childLoggerFactory']>

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
    const query = request.url.indexOf('?')
    const line = {
      reqId: request.id,
      method: request.method,
      path: query < 0 ? request.url : request.url.slice(0, query),
      status: reply.statusCode,
      durationMs: Math.round(reply.elapsedTime * 100) / 100,
      remoteAddress: request.ip,
    }
    const log = request.server.log
    // Set only while tracing is on (see plugins/tracing.ts).
    const ids = (request as unknown as Record<symbol, TraceIds | null | undefined>)[TRACE_IDS]
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
export const lazyChildLogger: ChildLoggerFactory = function lazyChildLogger(logger, bindings, options) {
  return new LazyChild(logger, bindings, options)
}
