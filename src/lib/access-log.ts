import { LogController, type FastifyReply, type FastifyRequest } from 'fastify'

/**
 * Fastify's request logging as one line a request, when it is answered: method, path (never the query string,
 * which may hold secrets), status, duration, the client's address (as --trust-proxy allows) and, through the request's
 * logger, its id; instead of Fastify's two lines ("incoming request", "request completed") with whole request and
 * response objects.
 */
export class AccessLog extends LogController {
  override incomingRequest(): void {
    // The one line is written when the request is answered.
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const query = request.url.indexOf('?')
    const line = {
      method: request.method,
      path: query < 0 ? request.url : request.url.slice(0, query),
      status: reply.statusCode,
      durationMs: Math.round(reply.elapsedTime * 100) / 100,
      remoteAddress: request.ip,
    }
    if (error == null) request.log.info(line, 'request')
    else request.log.error({ ...line, err: error }, 'request failed while answering')
  }
}

/** The log controller of a server: the access log, or none at all (--no-access-log, e.g. behind nginx's own). */
export function logController(accessLog: boolean): LogController {
  return accessLog ? new AccessLog() : new LogController({ disableRequestLogging: true })
}
