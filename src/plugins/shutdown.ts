import fp from 'fastify-plugin'
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
  fastify.decorate<Lifecycle>('lifecycle', {
    get shuttingDown() {
      return shuttingDown
    },
    beginShutdown() {
      shuttingDown = true
    },
  })
  fastify.readiness.add('shutdown', () => {
    if (shuttingDown) throw new Error('the server is shutting down')
  })
  // A kept-alive connection would otherwise carry new requests to a server that is leaving; Fastify
  // does the same once close() has begun, this covers the --shutdown-delay before it.
  // Callback style: it runs on every response, and an async hook would cost a promise each time.
  fastify.addHook('onSend', (request, reply, payload, done) => {
    if (shuttingDown && request.raw.httpVersionMajor === 1) void reply.header('connection', 'close')
    done(null, payload)
  })
  fastify.addHook('onClose', () => {
    shuttingDown = true
  })
}

export default fp(lifecycle, { name: 'mrmat-lifecycle', fastify: '5.x', dependencies: ['mrmat-readiness'] })
