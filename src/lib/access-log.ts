import {
  LogController, type FastifyBaseLogger, type FastifyReply, type FastifyRequest, type FastifyServerOptions,
} from 'fastify'

type ChildLoggerFactory = NonNullable<FastifyServerOptions['childLoggerFactory']>

/**
 * Fastify's request logging as one line a request, when it is answered: the request id, method, path (never the
 * query string, which may hold secrets), status, duration and the client's address (as --trust-proxy allows); instead
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
    if (error == null) log.info(line, 'request')
    else log.error({ ...line, err: error }, 'request failed while answering')
  }
}

/** The log controller of a server: the access log, or none at all (--no-access-log, e.g. behind nginx's own). */
export function logController(accessLog: boolean): LogController {
  return accessLog ? new AccessLog() : new LogController({ disableRequestLogging: true })
}

/** pino's levels by severity; a logger at `silent`, or at a level not here, writes nothing below it. */
const SEVERITY = { fatal: 60, error: 50, warn: 40, info: 30, debug: 20, trace: 10 } as const
const LEVELS = Object.keys(SEVERITY) as (keyof typeof SEVERITY)[]

/**
 * For Fastify's childLoggerFactory: a request's logger (request.log, with its id bound) is made the first time a line
 * is written through it. Most requests write none (the access line is the server logger's), and making a pino child
 * for each would cost a couple of microseconds a request for nothing.
 */
export const lazyChildLogger: ChildLoggerFactory = function lazyChildLogger(logger, bindings, options) {
  let child: FastifyBaseLogger | undefined
  const made = (): FastifyBaseLogger => (child ??= logger.child(bindings, options))
  const lazy: Record<string, unknown> = {
    get level() { return child?.level ?? logger.level },
    set level(level: string) { made().level = level },
    child: (more: Record<string, unknown>, moreOptions?: object) => made().child(more, moreOptions),
    silent: () => undefined,
  }
  for (const level of LEVELS) {
    lazy[level] = (...args: unknown[]) => {
      const threshold = SEVERITY[logger.level as keyof typeof SEVERITY] as number | undefined
      if (child === undefined && (threshold === undefined || SEVERITY[level] < threshold)) return
      const target = made()
      const write: (...given: unknown[]) => void = target[level]
      write.apply(target, args)
    }
  }
  return lazy as unknown as FastifyBaseLogger
}
