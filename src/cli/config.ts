import { mkdirSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { ConfigError } from '../lib/errors.js'
import { resolveOptions, type OptionSources } from '../lib/option-table.js'
import { SERVER_NAMING, SERVER_OPTIONS, type ServerOptions } from '../options.js'
import { readClientSecrets, resolveAuthSettings, type AuthSettings } from '../plugins/auth/settings.js'
import { SQLITE_MEMORY, type DatabaseLocation } from '../plugins/database/url.js'

export const DEFAULT_DATABASE_FILE = 'mrmat-ts-api-fastify.sqlite'

/** The server's configuration, validated once at the edge: the rest of the code trusts it. */
export interface ServerConfig extends Omit<ServerOptions, 'db' | 'workers' | 'logLevel' | 'logFormat'> {
  logLevel: NonNullable<ServerOptions['logLevel']>
  /** --log-format, else pretty on a terminal and JSON elsewhere. */
  logFormat: NonNullable<ServerOptions['logFormat']>
  /** --db, else the SQLite file in the instance path. */
  database: DatabaseLocation
  /** Worker processes; 1 serves from this process without node:cluster. */
  workers: number
  /** The identity provider to trust; undefined runs without authentication. */
  auth: AuthSettings | undefined
}

/**
 * The options from their sources (see resolveOptions), then what no single option can check: how they fit together,
 * the identity provider's settings, and the instance folder, created last so that a rejected configuration leaves
 * nothing behind.
 */
export function resolveServerConfig(sources: OptionSources): ServerConfig {
  const { db, workers: workersOption, logLevel, logFormat, ...options } = resolveOptions(SERVER_OPTIONS, SERVER_NAMING,
    sources)
  const database = db ?? { dialect: 'sqlite' as const, file: join(options.instancePath, DEFAULT_DATABASE_FILE) }
  const workers = workersOption === 'auto' ? availableParallelism() : workersOption
  if (workers > 1 && database.dialect === 'sqlite' && database.file === SQLITE_MEMORY) {
    throw new ConfigError(
      'invalid --workers: an in-memory database is private to each process, so it needs --workers 1',
    )
  }
  if (options.shutdownDelay >= options.shutdownTimeout) {
    throw new ConfigError(
      `invalid --shutdown-delay (${options.shutdownDelay}): `
      + `must be shorter than --shutdown-timeout (${options.shutdownTimeout})`,
    )
  }
  if (options.requestTimeout > 0 && options.headersTimeout > options.requestTimeout) {
    throw new ConfigError(
      `invalid --headers-timeout (${options.headersTimeout}): `
      + `must not exceed --request-timeout (${options.requestTimeout})`,
    )
  }
  if (options.metricsPort !== undefined && !options.metrics) {
    throw new ConfigError('invalid --metrics-port: it serves the metrics, which are off; add --metrics')
  }
  if (options.metrics && workers > 1 && options.metricsPort === undefined) {
    throw new ConfigError('invalid --metrics with --workers: the primary answers for every worker on a port of its '
      + 'own; add --metrics-port')
  }
  const auth = resolveAuthSettings({
    secrets: options.oidcSecrets === undefined ? undefined : readClientSecrets(options.oidcSecrets),
    issuer: options.issuer,
    audience: options.audience,
    jwksUri: options.jwksUri,
    clockTolerance: options.clockTolerance,
    tokenType: options.tokenType,
  })
  try {
    mkdirSync(options.instancePath, { recursive: true })
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message
    throw new ConfigError(`cannot create --instance-path ${options.instancePath}: ${reason}`)
  }
  return {
    ...options,
    database,
    workers,
    auth,
    logLevel: logLevel ?? (options.debug ? 'debug' : 'info'),
    logFormat: logFormat ?? (process.stdout.isTTY ? 'pretty' : 'json'),
  }
}
