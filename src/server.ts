import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { buildSerializer } from './lib/serialization.js'
import { buildValidator } from './lib/validation.js'
import type { AppOptionNames } from './lib/option-table.js'
import { SERVER_OPTIONS, type ServerOptions } from './options.js'
import { lazyChildLogger, logController } from './lib/access-log.js'
import { closeOnlyIdleConnections } from './lib/idle-connections.js'
import { clientErrorHandler, frameworkErrorHandler } from './plugins/problem-details.js'
import { genRequestId } from './plugins/request-id.js'

/**
 * The settings the server's CLI options marked `app` give buildApp, under the same names and with the same defaults
 * (see options.ts): the HTTP server's (timeouts, body limit, proxies) and the plugins' (scopes, load limits).
 */
export type AppSettings = Partial<Pick<ServerOptions, AppOptionNames<typeof SERVER_OPTIONS>>>

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Takes in the connections and bytes that have arrived, before close() stops listening (see idle-connections);
     * waits at most about `within` ms for the connections queued to be accepted.
     */
    settleConnections: (within: number) => Promise<void>
  }
}

export interface ServerSettings extends AppSettings {
  /** Fastify's logger option; off unless given. */
  logger?: FastifyServerOptions['logger']
  /** A pino logger to use instead (the CLI shares its own). */
  loggerInstance?: FastifyBaseLogger
}

/**
 * The Fastify instance with the server's settings: timeouts, body limit, proxies, request ids, problem details for
 * what goes wrong before routing, and trailing slashes. The API is registered on it as a plugin (see app.ts).
 */
export function createServer(settings: ServerSettings = {}): FastifyInstance {
  const accessLog = settings.accessLog ?? SERVER_OPTIONS.accessLog.default
  // Once Fastify has a logger it times every response, a `finish` and an `error` listener each, for its request
  // logging alone. Without the access line nothing reads that time, so the logger given is then not Fastify's: it is
  // installed below as the server's `log`, and each request's logger is made from it (lazyChildLogger). That is all
  // Fastify and the plugins write through.
  const installed = accessLog ? undefined : settings.loggerInstance
  const server = Fastify({
    ...(settings.loggerInstance === undefined ? { logger: settings.logger ?? false }
      : installed === undefined ? { loggerInstance: settings.loggerInstance } : { logger: false }),
    genReqId: genRequestId,
    logController: logController(accessLog),
    childLoggerFactory: lazyChildLogger,
    bodyLimit: settings.bodyLimit ?? SERVER_OPTIONS.bodyLimit.default,
    trustProxy: settings.trustProxy ?? SERVER_OPTIONS.trustProxy.default,
    keepAliveTimeout: settings.keepAliveTimeout ?? SERVER_OPTIONS.keepAliveTimeout.default,
    requestTimeout: settings.requestTimeout ?? SERVER_OPTIONS.requestTimeout.default,
    // No socket inactivity timeout: idle connections end at keepAliveTimeout, slow uploads at requestTimeout, and a
    // slow handler is bounded by its database, not cut off half-answered.
    connectionTimeout: 0,
    // Node checks the header and request timeouts only this often (30 s by default): a slow client would otherwise
    // hold its socket for up to that much past them.
    http: { connectionsCheckingInterval: 1000 },
    // Idle kept-alive connections close with the server; requests in flight finish. Requests that still arrive on an
    // open connection are served and closed rather than answered a bare 503 that is not problem details.
    forceCloseConnections: 'idle',
    return503OnClosing: false,
    // /api/greeting/v1 and /api/greeting/v1/ are the same route, answered without a redirect.
    routerOptions: { ignoreTrailingSlash: true },
    schemaController: { compilersFactory: { buildValidator, buildSerializer } },
    frameworkErrors: frameworkErrorHandler,
    clientErrorHandler,
  })
  if (installed !== undefined) server.log = installed
  server.server.headersTimeout = settings.headersTimeout ?? SERVER_OPTIONS.headersTimeout.default
  const connections = closeOnlyIdleConnections(server.server)
  server.decorate('settleConnections', connections.settle)
  return server.withTypeProvider<TypeBoxTypeProvider>()
}
