/**
 * The library entry (`import … from 'mrmat-ts-api-fastify'`): the whole server as `buildApp`, the
 * shared plugins that the API plugins depend on, and what it takes to configure them. The API plugins
 * themselves are subpath exports (`mrmat-ts-api-fastify/plugins/greeting/v2`, …), so that a host app
 * loads only the APIs it mounts.
 */
export { buildApp, DEFAULT_BODY_LIMIT, type AppOptions } from './app.js'

export { default as problemDetails, HttpProblem, toProblem, sendProblem } from './errors.js'
export { ProblemTypes, PROBLEM_CONTENT_TYPE, type Problem, type InvalidParam } from './problem.js'

export { default as bearerAuth, BEARER_AUTH, ALGORITHMS, type AuthPluginOptions } from './auth/plugin.js'
export {
  resolveAuthSettings,
  readClientSecrets,
  AuthSettingsError,
  DEFAULT_CLOCK_TOLERANCE,
  type AuthSettings,
  type ClientSecrets,
} from './auth/settings.js'
export { identityOf, type Identity } from './auth/identity.js'
export { ProviderUnavailableError, type ProviderTimings } from './auth/provider.js'

export { default as databasePlugin, type DatabasePluginOptions } from './db/plugin.js'
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
} from './db/index.js'

export { default as readiness, type Readiness, type ReadinessCheck, type ReadinessOptions, type CheckResult } from './readiness.js'
export { default as openapi, type OpenApiOptions } from './openapi.js'
export { packageVersion } from './paths.js'
