import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import healthz from '#plugins/healthz/index.js'
import greetingV1 from '#plugins/greeting/v1/index.js'
import greetingV2 from '#plugins/greeting/v2/index.js'
import greetingV3 from '#plugins/greeting/v3/index.js'
import resourceV1 from '#plugins/resource/v1/index.js'
import bearerAuth, { type AuthPluginOptions } from './plugins/auth/plugin.js'
import type { AuthSettings } from './plugins/auth/settings.js'
import databasePlugin from './plugins/database/plugin.js'
import type { Database } from './plugins/database/database.js'
import loadShedding, { type LoadOptions } from './plugins/load-shedding.js'
import openapi from './plugins/openapi.js'
import problemDetails from './plugins/problem-details.js'
import readiness from './plugins/readiness.js'
import requestId from './plugins/request-id.js'
import shutdown from './plugins/shutdown.js'
import type { TracingOptions } from './plugins/tracing.js'
import { createServer, type AppSettings, type ServerSettings } from './server.js'

/** What the API as a plugin takes: the settings it shares with the CLI, and what a program hands it. */
export interface ApiOptions extends AppSettings {
  /** An open database; without one resource v1, which needs it, is not mounted. */
  database?: Database
  /** Apply pending migrations while loading. Off by default: the CLI migrates before serving. */
  migrate?: boolean
  /** Close `database` when the app closes. On by default. */
  closeDatabase?: boolean
  /** The identity provider to trust; without it protected routes answer 401. */
  auth?: AuthSettings
  /** Cache sizes and provider timings of the bearer-token check (tests shorten them). */
  authTuning?: Omit<AuthPluginOptions, 'settings'>
  /** How often load is measured and how long refused clients are told to wait (tests shorten them). */
  loadTuning?: Pick<LoadOptions, 'sampleInterval' | 'retryAfter'>
  /**
   * Adds `fastify.lifecycle` and the readiness check `shutdown`, which fails once `lifecycle.beginShutdown()` is
   * called. Off by default; the CLI turns it on.
   */
  shutdownReadiness?: boolean
  /** With `metrics`: the registry to fill (a new one by default), for a caller that serves it itself. */
  metricsRegistry?: Registry
  /** With `metrics`: answer GET /metrics on this server (hidden from the OpenAPI document). On by default. */
  serveMetrics?: boolean
  /**
   * OpenTelemetry spans for requests, token checks and database statements (the tracing plugin), to the global tracer
   * provider or the one given. Off by default; its modules are loaded only when on.
   */
  tracing?: boolean | TracingOptions
}

/**
 * The whole API as one encapsulated plugin: the shared plugins (request ids, problem details, readiness, load
 * shedding, shutdown, OpenAPI, authentication, the database) and every API version at its path. A host app mounts
 * all of it in one line, under a prefix of its own: `app.register(api, { prefix: '/mrmat', database, auth })`.
 */
async function api(fastify: FastifyInstance, options: ApiOptions): Promise<void> {
  // The APIs speak JSON only: a text/plain body is a 415, not a string for the validator to reject.
  fastify.removeContentTypeParser('text/plain')

  if (options.tracing !== undefined && options.tracing !== false) {
    // First: the request's span is opened before any other hook runs.
    const { default: tracing } = await import('./plugins/tracing.js')
    await fastify.register(tracing, options.tracing === true ? {} : options.tracing)
  }
  await fastify.register(requestId)
  await fastify.register(problemDetails)
  if (options.metrics === true) {
    // Before the plugins that report to it (load shedding, auth, the database); prom-client is loaded only then.
    const { default: metrics } = await import('./plugins/metrics.js')
    await fastify.register(metrics, {
      ...(options.metricsRegistry === undefined ? {} : { registry: options.metricsRegistry }),
      ...(options.serveMetrics === false ? { path: false } : {}),
    })
  }
  await fastify.register(readiness)
  if (options.shutdownReadiness === true) await fastify.register(shutdown)
  const { maxEventLoopDelay, maxHeapUsed, maxRss } = options
  if (maxEventLoopDelay !== undefined || maxHeapUsed !== undefined || maxRss !== undefined) {
    await fastify.register(loadShedding, {
      maxEventLoopDelay: maxEventLoopDelay ?? 0,
      maxHeapUsed: maxHeapUsed ?? 0,
      maxRss: maxRss ?? 0,
      ...options.loadTuning,
    })
  }
  await fastify.register(openapi, { ui: options.swaggerUi ?? true })
  await fastify.register(bearerAuth, { ...options.authTuning, settings: options.auth })
  if (options.database !== undefined) {
    await fastify.register(databasePlugin, {
      database: options.database,
      migrate: options.migrate ?? false,
      closeOnShutdown: options.closeDatabase ?? true,
    })
  }

  await fastify.register(healthz, { prefix: '/healthz' })
  await fastify.register(greetingV1, { prefix: '/api/greeting/v1' })
  await fastify.register(greetingV2, { prefix: '/api/greeting/v2' })
  await fastify.register(greetingV3, { prefix: '/api/greeting/v3' })
  if (options.database !== undefined) {
    await fastify.register(resourceV1, {
      prefix: '/api/resource/v1',
      readScope: options.resourceReadScope,
      writeScope: options.resourceWriteScope,
    })
  }
}

export default fp(api, { name: 'mrmat-ts-api-fastify', fastify: '5.x', encapsulate: true })

export type AppOptions = ServerSettings & ApiOptions

/**
 * The server with every API mounted at its path: the seed's create_app, as the server factory plus the API plugin.
 * The API shares the server's context here, so that what its plugins decorate (`lifecycle`, `database`, `readiness`,
 * `swagger`, `identityProvider`) is on the instance returned.
 */
export async function buildApp(options: AppOptions = {}): Promise<FastifyInstance> {
  const server = createServer(options)
  await server.register(fp(api, { name: 'mrmat-ts-api-fastify', fastify: '5.x' }), options)
  return server
}
