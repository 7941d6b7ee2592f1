import { SERVER_OPTIONS } from './options.js'

/**
 * The library entry (`import … from 'mrmat-ts-api-fastify'`): the whole server as `buildApp`, the whole API as one
 * plugin (`api`) for a host app, the shared plugins that the API plugins depend on, and what it takes to configure
 * them. The API plugins themselves are subpath exports (`mrmat-ts-api-fastify/plugins/greeting/v2`, …), so that a
 * host app loads only the APIs it mounts.
 */
export { buildApp, default as api, type AppOptions, type ApiOptions } from './app.js'
export { createServer, type ServerSettings, type AppSettings } from './server.js'
export const DEFAULT_BODY_LIMIT = SERVER_OPTIONS.bodyLimit.default
export { codedError, ConfigError, type CodedError } from './lib/errors.js'

export { default as problemDetails, HttpProblem, toProblem, sendProblem } from './plugins/problem-details.js'
export { ProblemTypes, PROBLEM_CONTENT_TYPE, type Problem, type InvalidParam } from './lib/problem.js'

export { default as bearerAuth, BEARER_AUTH, ALGORITHMS, type AuthPluginOptions } from './plugins/auth/plugin.js'
export {
  resolveAuthSettings,
  readClientSecrets,
  AuthSettingsError,
  DEFAULT_CLOCK_TOLERANCE,
  type AuthSettings,
  type ClientSecrets,
} from './plugins/auth/settings.js'
export { identityOf, type Identity } from './plugins/auth/identity.js'
export { ProviderUnavailableError, type ProviderTimings } from './plugins/auth/identity-provider.js'

export { default as databasePlugin, type DatabasePluginOptions } from './plugins/database/plugin.js'
export {
  openDatabase,
  parseDatabaseUrl,
  describeDatabase,
  DatabaseError,
  DatabaseUrlError,
  type OpenOptions,
  type Database,
  type DatabaseLocation,
  type SqliteDatabase,
  type PostgresDatabase,
  type MysqlDatabase,
} from './plugins/database/index.js'

export {
  default as readiness,
  type Readiness,
  type ReadinessCheck,
  type ReadinessOptions,
  type CheckResult,
} from './plugins/readiness.js'
export { default as openapi, type OpenApiOptions } from './plugins/openapi.js'
export { packageVersion } from './lib/package-info.js'

// The metrics and tracing plugins are subpath exports (`mrmat-ts-api-fastify/metrics`, `…/tracing`): importing the
// root must not load prom-client or OpenTelemetry.
export type { MetricsOptions } from './plugins/metrics.js'
export type { TracingOptions } from './plugins/tracing.js'
export {
  tracingConfigured, type AuthObserver, type RequestTracer, type ServerMetrics, type TraceIds, type WorkSpan,
} from './lib/observability.js'
export type { DatabaseStats } from './plugins/database/database.js'
