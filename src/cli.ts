#!/usr/bin/env node
import { pathToFileURL } from 'node:url'
import { realpathSync } from 'node:fs'
import cluster from 'node:cluster'
import { setTimeout as sleep } from 'node:timers/promises'
import yargs, { type Argv } from 'yargs'
import { hideBin } from 'yargs/helpers'
import { pino, type Logger } from 'pino'
import closeWithGrace from 'close-with-grace'
import { buildApp, DEFAULT_BODY_LIMIT, DEFAULT_HEADERS_TIMEOUT, DEFAULT_KEEP_ALIVE_TIMEOUT, DEFAULT_REQUEST_TIMEOUT } from './app.js'
import { ConfigError, readConfigFile, resolveServerConfig, type ServerConfig } from './config.js'
import { DatabaseError, describeDatabase, openDatabase, type Database } from './db/index.js'
import { openSqlite } from './db/sqlite.js'
import { DEFAULT_READ_SCOPE, DEFAULT_WRITE_SCOPE } from '../plugins/resource/v1/index.js'
import { packageVersion } from './paths.js'
import { ClusterError, onPrimaryShutdown, runPrimary } from './workers.js'

const NAME = 'mrmat-ts-api-fastify'

export const EXIT_RUNTIME = 1
export const EXIT_USAGE = 2

function makeLogger(config: ServerConfig): Logger {
  // Every line carries pino's pid; the role says which process of a cluster wrote it.
  const role = config.workers === 1 ? 'server' : cluster.isPrimary ? 'primary' : 'worker'
  return pino({ name: NAME, level: config.debug ? 'debug' : 'info' }).child({ role })
}

async function openMigrated(config: ServerConfig, log: Logger, migrate = true): Promise<Database> {
  log.info({ instancePath: config.instancePath, database: describeDatabase(config.database) }, 'opening the database')
  const database = await openDatabase(config.database, { postgres: { poolSize: config.dbPoolSize } })
  if (!migrate) return database
  try {
    await database.migrate()
  } catch (error) {
    await database.close()
    throw error
  }
  log.info('database migrations are applied')
  return database
}

async function serve(config: ServerConfig): Promise<void> {
  if (config.workers > 1 && cluster.isPrimary) {
    await servePrimary(config)
    return
  }
  const log = makeLogger(config)
  // The primary of a cluster has migrated already: workers starting together must not race to.
  const database = await openMigrated(config, log, cluster.isPrimary)
  const app = await buildApp({
    loggerInstance: log,
    database,
    auth: config.auth,
    resourceScopes: config.resourceScopes,
    trustProxy: config.trustProxy,
    bodyLimit: config.http.bodyLimit,
    keepAliveTimeout: config.http.keepAliveTimeout,
    requestTimeout: config.http.requestTimeout,
    headersTimeout: config.http.headersTimeout,
    load: config.pressure,
    shutdownReadiness: true,
  })
  if (config.auth === undefined) {
    log.warn('no authentication is configured: protected APIs will answer 401 (pass --oidc-secrets or --issuer)')
  } else {
    log.info({ issuer: config.auth.issuer, audience: config.auth.audience }, 'bearer tokens are verified against the identity provider')
  }
  try {
    await app.listen({ host: config.host, port: config.port })
  } catch (error) {
    await app.close()
    throw new StartError(`cannot listen on ${config.host}:${config.port}: ${(error as Error).message}`)
  }
  // Installed only once serving: close-with-grace exits 0 on beforeExit, which would hide a failed start.
  // Past --shutdown-timeout it exits 1 with whatever is still in flight.
  const grace = closeWithGrace({ delay: config.shutdownTimeout, logger: log }, async ({ signal, err, manual }) => {
    if (err !== undefined) log.error({ err }, 'shutting down after an uncaught error')
    // Readiness fails from here on; the requests in flight finish.
    else log.info({ signal, requestedBy: manual === true ? 'primary' : undefined, delay: config.shutdownDelay }, 'shutting down')
    app.lifecycle.beginShutdown()
    // Still accepting while a load balancer probing readiness notices and stops sending.
    if (config.shutdownDelay > 0) await sleep(config.shutdownDelay)
    await app.close()
    log.info('stopped: the listener and the database are closed')
  })
  if (cluster.isWorker) {
    onPrimaryShutdown(() => {
      // Ignored when a signal has begun the shutdown already (Ctrl-C reaches every process of the group).
      if (!app.lifecycle.shuttingDown) grace.close()
    })
  }
}

async function servePrimary(config: ServerConfig): Promise<void> {
  const log = makeLogger(config)
  const database = await openMigrated(config, log)
  await database.close()
  log.info({ workers: config.workers }, `primary (pid ${process.pid}) starting ${config.workers} workers`)
  try {
    await runPrimary({ workers: config.workers, shutdownTimeout: config.shutdownTimeout, log })
  } catch (error) {
    if (error instanceof ClusterError) throw new StartError(error.message)
    throw error
  }
}

async function migrateOnly(config: ServerConfig): Promise<void> {
  const database = await openMigrated(config, makeLogger(config))
  await database.close()
}

async function printOpenApi(): Promise<void> {
  // An in-memory database mounts every API, so the document lists them all.
  const app = await buildApp({ database: openSqlite(':memory:'), migrate: true, swaggerUi: false })
  await app.ready()
  process.stdout.write(`${JSON.stringify(app.swagger(), null, 2)}\n`)
  await app.close()
}

/** A mistake in how the CLI was called: unknown option, missing value, bad choice. */
export class UsageError extends Error {}

/** The server could not start: the port is taken, say. */
export class StartError extends Error {}

const ENV_PREFIX = 'MRMAT_'
const ENV_OPTIONS = [
  'config', 'debug', 'host', 'port', 'instance-path', 'db', 'db-pool-size', 'oidc-secrets', 'issuer', 'audience', 'jwks-uri',
  'clock-tolerance', 'resource-read-scope', 'resource-write-scope', 'workers', 'shutdown-timeout', 'shutdown-delay',
  'trust-proxy', 'body-limit', 'keep-alive-timeout', 'request-timeout', 'headers-timeout', 'max-event-loop-delay',
  'max-heap-used', 'max-rss',
]

/**
 * MRMAT_<OPTION> variables as flags placed before the real ones, so that a flag beats a variable and
 * a variable beats the config file. Only known options are read: yargs' own .env() would take every
 * MRMAT_* variable (the client's, the test suite's) and strict mode would then refuse to start.
 */
export function envArgs(env: NodeJS.ProcessEnv): string[] {
  return ENV_OPTIONS.flatMap((option) => {
    const value = env[ENV_PREFIX + option.toUpperCase().replaceAll('-', '_')]
    return value === undefined || value === '' ? [] : [`--${option}=${value}`]
  })
}

export function cli(args: string[], env: NodeJS.ProcessEnv = process.env): Argv {
  return yargs([...envArgs(env), ...args])
    .scriptName(NAME)
    .usage('$0 [command] [options]\n\nThe MrMat REST API server. Every option can also be set by a variable MRMAT_<OPTION>\n(MRMAT_PORT, MRMAT_INSTANCE_PATH, ...) or a key of a JSON --config file; a flag beats a variable,\na variable beats the file.')
    .parserConfiguration({ 'duplicate-arguments-array': false })
    .config('config', 'JSON file with option defaults (also MRMAT_CONFIG)', readConfigFile)
    .options({
      debug: { alias: 'd', type: 'boolean', default: false, description: 'Log at debug level' },
      host: { type: 'string', default: 'localhost', description: 'Address to listen on' },
      port: { type: 'number', default: 8080, description: 'Port to listen on (0 picks a free one)' },
      'instance-path': { type: 'string', default: 'var/instance', description: 'Folder for instance data, created if missing' },
      db: {
        type: 'string',
        description: 'Database URI: sqlite:<path>, a file path, :memory: or postgres://… [default: SQLite file in the instance path]',
      },
      'db-pool-size': { type: 'number', default: 10, description: 'Connections in the PostgreSQL pool' },
      'oidc-secrets': { type: 'string', description: 'Client-secrets JSON file of the OpenID provider (the seed\'s format)' },
      issuer: { type: 'string', description: 'OpenID provider issuer URL; tokens\' iss must equal it [default: web.issuer of --oidc-secrets]' },
      audience: { type: 'string', description: 'Audience tokens must carry in aud [default: web.client_id of --oidc-secrets]' },
      'jwks-uri': { type: 'string', description: 'Signing keys URL, instead of the jwks_uri of discovery' },
      'clock-tolerance': { type: 'number', default: 30, description: 'Seconds of clock skew allowed on exp and nbf' },
      'resource-read-scope': { type: 'string', default: DEFAULT_READ_SCOPE, description: 'Scope resource v1 needs to read' },
      'resource-write-scope': { type: 'string', default: DEFAULT_WRITE_SCOPE, description: 'Scope resource v1 needs to write' },
      workers: { type: 'string', default: '1', description: 'Worker processes sharing the port; auto = one per CPU; 1 = no cluster' },
      'shutdown-timeout': { type: 'number', default: 10_000, description: 'Milliseconds a graceful shutdown may take before exiting 1' },
      'shutdown-delay': {
        type: 'number', default: 0, description: 'Milliseconds readiness fails while still serving, before the listener closes',
      },
      'trust-proxy': {
        type: 'string',
        default: 'false',
        description: 'Take client address, scheme and host from X-Forwarded-* of: true (anyone), a hop count, or a comma-separated list of proxy IPs/CIDRs',
      },
      'body-limit': { type: 'number', default: DEFAULT_BODY_LIMIT, description: 'Largest request body in bytes (413 above)' },
      'keep-alive-timeout': {
        type: 'number', default: DEFAULT_KEEP_ALIVE_TIMEOUT, description: 'Milliseconds an idle connection stays open; keep above the proxy\'s',
      },
      'request-timeout': {
        type: 'number', default: DEFAULT_REQUEST_TIMEOUT, description: 'Milliseconds a client has to send a whole request (0 = no limit)',
      },
      'headers-timeout': { type: 'number', default: DEFAULT_HEADERS_TIMEOUT, description: 'Milliseconds a client has to send the request headers' },
      'max-event-loop-delay': { type: 'number', default: 1000, description: 'Answer 503 above this mean event-loop delay in ms (0 = off)' },
      'max-heap-used': {
        type: 'number', default: 0.95, description: 'Answer 503 above this V8 heap use: bytes, or up to 1 a ratio of the heap limit (0 = off)',
      },
      'max-rss': { type: 'number', default: 0, description: 'Answer 503 above this resident set size in bytes (0 = off)' },
    })
    .command(['serve', '$0'], 'Apply migrations and serve the API (default)', {}, async (argv) => serve(resolveServerConfig(argv)))
    .command('migrate', 'Apply database migrations and exit', {}, async (argv) => migrateOnly(resolveServerConfig(argv)))
    .command('openapi', 'Print the OpenAPI document as JSON and exit', {}, async () => printOpenApi())
    .version(packageVersion)
    .alias('h', 'help')
    .strict()
    .wrap(Math.min(110, process.stdout.columns || 110))
    .fail((message: string, error: Error | null | undefined) => {
      throw error ?? new UsageError(message)
    })
}

/** Runs the CLI; errors are one line on stderr and an exit code, never a stack trace. */
export async function main(args: string[]): Promise<void> {
  try {
    await cli(args).parseAsync()
  } catch (error) {
    const err = error as Error
    // yargs rethrows what the --config reader threw as its own YError.
    const usage = err instanceof ConfigError || err instanceof UsageError || err.name === 'YError'
    process.stderr.write(`${NAME}: ${err.message}\n`)
    if (usage) process.stderr.write(`Run '${NAME} --help' for usage.\n`)
    const expected = usage || err instanceof DatabaseError || err instanceof StartError
    if (!expected && process.env.MRMAT_DEBUG !== undefined) {
      process.stderr.write(`${err.stack ?? ''}\n`)
    }
    process.exitCode = usage ? EXIT_USAGE : EXIT_RUNTIME
    // A cluster worker's channel to the primary would keep it alive, failed, forever.
    if (cluster.isWorker) process.exit()
  }
}

const invokedDirectly = process.argv[1] !== undefined
  && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href
if (invokedDirectly) await main(hideBin(process.argv))
