import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
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
}

export const DEFAULT_BODY_LIMIT = 1024 * 1024

/** The server, with every API mounted at its prefix: the seed's create_app. */
export async function buildApp(options: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    ...(options.loggerInstance === undefined ? { logger: options.logger ?? false } : { loggerInstance: options.loggerInstance }),
    genReqId: genRequestId,
    bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    // /api/greeting/v1 and /api/greeting/v1/ are the same route, answered without a redirect.
    routerOptions: { ignoreTrailingSlash: true },
    schemaController: { compilersFactory: { buildValidator } },
    frameworkErrors: frameworkErrorHandler,
    clientErrorHandler,
  }).withTypeProvider<TypeBoxTypeProvider>()
  // The APIs speak JSON only: a text/plain body is a 415, not a string for the validator to reject.
  app.removeContentTypeParser('text/plain')

  await app.register(requestId)
  await app.register(problemDetails)
  await app.register(readiness)
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
