import fp from 'fastify-plugin'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyInstance } from 'fastify'

export interface Lifecycle {
  /** True once a shutdown has begun. */
  readonly shuttingDown: boolean
  /**
   * Marks the server as going away: readiness fails at once, so that a load balancer stops sending
   * new work while the requests already accepted finish, and every response closes its connection.
   */
  beginShutdown(): void
}

declare module 'fastify' {
  interface FastifyInstance {
    lifecycle: Lifecycle
  }
}

/** Shutdown state, reported to readiness as the `shutdown` check. */
async function lifecycle(fastify: FastifyInstance): Promise<void> {
  let shuttingDown = false
  // A kept-alive connection would otherwise carry new requests to a server that is leaving; Fastify does the same once
  // close() has begun, this covers the --shutdown-delay before it. A listener on the HTTP server, added only when the
  // shutdown begins, rather than a hook that every response would pass through. It runs before any hook of the
  // request, and an HTTP/2 stream has no connection header to set.
  const closeConnections = (request: IncomingMessage, response: ServerResponse): void => {
    if (request.httpVersionMajor === 1 && !response.headersSent) response.setHeader('connection', 'close')
  }
  const begin = (): void => {
    if (shuttingDown) return
    shuttingDown = true
    fastify.server.prependListener('request', closeConnections)
  }
  fastify.decorate<Lifecycle>('lifecycle', {
    get shuttingDown() {
      return shuttingDown
    },
    beginShutdown: begin,
  })
  fastify.readiness.add('shutdown', () => {
    if (shuttingDown) throw new Error('the server is shutting down')
  })
  // From close() on, Fastify closes kept-alive connections itself.
  fastify.addHook('onClose', (_instance, done) => {
    shuttingDown = true
    fastify.server.removeListener('request', closeConnections)
    done()
  })
}

export default fp(lifecycle, { name: 'mrmat-lifecycle', fastify: '5.x', dependencies: ['mrmat-readiness'] })
