import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { TrustProxy } from './config.js'
import healthz from '../plugins/healthz/index.js'
import greetingV1 from '../plugins/greeting/v1/index.js'
import greetingV2 from '../plugins/greeting/v2/index.js'
import greetingV3 from '../plugins/greeting/v3/index.js'
import resourceV1, { type ResourceV1Options } from '../plugins/resource/v1/index.js'
import bearerAuth, { type AuthPluginOptions } from './auth/plugin.js'
import type { AuthSettings } from './auth/settings.js'
import databasePlugin from './db/plugin.js'
import type { Database } from './db/database.js'
import problemDetails, { clientErrorHandler, frameworkErrorHandler } from './errors.js'
import openapi from './openapi.js'
import lifecycle from './lifecycle.js'
import load, { type LoadOptions } from './load.js'
import readiness from './readiness.js'
import requestId, { genRequestId } from './request-id.js'
import { buildValidator } from './validation.js'

export interface AppOptions {
  /** Fastify's logger option; off unless given. */
  logger?: FastifyServerOptions['logger']
  /** A pino logger to use instead (the CLI shares its own). */
  loggerInstance?: FastifyBaseLogger
  /** An open database; without one resource v1, which needs it, is not mounted. */
  database?: Database
  /** Apply pending migrations while building. Off by default: the CLI migrates before serving. */
  migrate?: boolean
  /** Close `database` when the app closes. On by default. */
  closeDatabase?: boolean
  /** Largest request body accepted, in bytes (413 above it). */
  bodyLimit?: number
  /** Serve Swagger UI at /docs/. On by default. */
  swaggerUi?: boolean
  /** The identity provider to trust; without it protected routes answer 401. */
  auth?: AuthSettings
  /** Cache sizes and provider timings of the bearer-token check (tests shorten them). */
  authTuning?: Omit<AuthPluginOptions, 'settings'>
  /** The scopes of resource v1. */
  resourceScopes?: ResourceV1Options
  /**
   * Which proxies may tell the client's address, scheme and host through X-Forwarded-*. Off by default:
   * trusting everyone would let any client forge them.
   */
  trustProxy?: TrustProxy
  /** Milliseconds an idle kept-alive connection stays open. */
  keepAliveTimeout?: number
  /** Milliseconds a client has to send a whole request (headers and body); 0 disables. */
  requestTimeout?: number
  /** Milliseconds a client has to send the request headers. */
  headersTimeout?: number
  /**
   * Adds `fastify.lifecycle` and the readiness check `shutdown`, which fails once
   * `lifecycle.beginShutdown()` is called. Off by default; the CLI turns it on.
   */
  shutdownReadiness?: boolean
  /** Answer 503 past these load limits (@fastify/under-pressure); without it no limit applies. */
  load?: LoadOptions
}

export const DEFAULT_BODY_LIMIT = 1024 * 1024
/**
 * Longer than the keepalive_timeout nginx and most load balancers keep idle upstream connections (60 s):
 * the proxy must always be the one to close an idle connection, or it may send a request on a socket
 * the server is closing at that moment and turn it into a 502.
 */
export const DEFAULT_KEEP_ALIVE_TIMEOUT = 72_000
/**
 * A request (headers and body, at most --body-limit) that takes longer to arrive is a slow client or a
 * slowloris attack, not a user: close it rather than hold a socket and a buffer for minutes (Node's
 * own default is 300 s).
 */
export const DEFAULT_REQUEST_TIMEOUT = 30_000
/** Headers are small; a client that has not sent them within 15 s is not going to. */
export const DEFAULT_HEADERS_TIMEOUT = 15_000

/** Fastify takes a hop count at run time but its types do not: a hop count is "the nearest n hops". */
function trustProxyOption(trust: TrustProxy): boolean | string[] | ((address: string, hop: number) => boolean) {
  return typeof trust === 'number' ? (_address, hop) => hop < trust : trust
}

/** The server, with every API mounted at its prefix: the seed's create_app. */
export async function buildApp(options: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    ...(options.loggerInstance === undefined ? { logger: options.logger ?? false } : { loggerInstance: options.loggerInstance }),
    genReqId: genRequestId,
    bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    trustProxy: trustProxyOption(options.trustProxy ?? false),
    keepAliveTimeout: options.keepAliveTimeout ?? DEFAULT_KEEP_ALIVE_TIMEOUT,
    requestTimeout: options.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT,
    // No socket inactivity timeout: idle connections end at keepAliveTimeout, slow uploads at
    // requestTimeout, and a slow handler is bounded by its database, not cut off half-answered.
    connectionTimeout: 0,
    // Idle kept-alive connections close with the server; requests in flight finish. Requests that
    // still arrive on an open connection are served and closed rather than answered a bare 503 that
    // is not problem details.
    forceCloseConnections: 'idle',
    return503OnClosing: false,
    // /api/greeting/v1 and /api/greeting/v1/ are the same route, answered without a redirect.
    routerOptions: { ignoreTrailingSlash: true },
    schemaController: { compilersFactory: { buildValidator } },
    frameworkErrors: frameworkErrorHandler,
    clientErrorHandler,
  }).withTypeProvider<TypeBoxTypeProvider>()
  app.server.headersTimeout = options.headersTimeout ?? DEFAULT_HEADERS_TIMEOUT
  // The APIs speak JSON only: a text/plain body is a 415, not a string for the validator to reject.
  app.removeContentTypeParser('text/plain')

  await app.register(requestId)
  await app.register(problemDetails)
  await app.register(readiness)
  if (options.shutdownReadiness === true) await app.register(lifecycle)
  if (options.load !== undefined) await app.register(load, options.load)
  await app.register(openapi, { ui: options.swaggerUi ?? true })
  await app.register(bearerAuth, { ...options.authTuning, settings: options.auth })
  if (options.database !== undefined) {
    await app.register(databasePlugin, {
      database: options.database,
      migrate: options.migrate ?? false,
      closeOnShutdown: options.closeDatabase ?? true,
    })
  }

  await app.register(healthz, { prefix: '/healthz' })
  await app.register(greetingV1, { prefix: '/api/greeting/v1' })
  await app.register(greetingV2, { prefix: '/api/greeting/v2' })
  await app.register(greetingV3, { prefix: '/api/greeting/v3' })
  if (options.database !== undefined) {
    await app.register(resourceV1, { ...options.resourceScopes, prefix: '/api/resource/v1' })
  }
  return app
}
