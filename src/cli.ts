#!/usr/bin/env node
import { pathToFileURL } from 'node:url'
import { realpathSync } from 'node:fs'
import yargs, { type Argv } from 'yargs'
import { hideBin } from 'yargs/helpers'
import { pino, type Logger } from 'pino'
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, readConfigFile, resolveServerConfig, type ServerConfig } from './config.js'
import { DatabaseError, describeDatabase, openDatabase, type Database } from './db/index.js'
import { openSqlite } from './db/sqlite.js'
import { DEFAULT_READ_SCOPE, DEFAULT_WRITE_SCOPE } from '../plugins/resource/v1/index.js'
import { packageVersion } from './paths.js'

const NAME = 'mrmat-ts-api-fastify'

export const EXIT_RUNTIME = 1
export const EXIT_USAGE = 2

function makeLogger(config: ServerConfig): Logger {
  return pino({ name: NAME, level: config.debug ? 'debug' : 'info' })
}

async function openMigrated(config: ServerConfig, log: Logger): Promise<Database> {
  log.info({ instancePath: config.instancePath, database: describeDatabase(config.database) }, 'opening the database')
  const database = await openDatabase(config.database, { postgres: { poolSize: config.dbPoolSize } })
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
  const log = makeLogger(config)
  const database = await openMigrated(config, log)
  const app = await buildApp({ loggerInstance: log, database, auth: config.auth, resourceScopes: config.resourceScopes })
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
  closeWithGrace({ delay: 10_000, logger: log }, async ({ signal, err }) => {
    if (err !== undefined) log.error({ err }, 'shutting down after an uncaught error')
    else log.info({ signal }, 'shutting down')
    await app.close()
  })
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
  'clock-tolerance', 'resource-read-scope', 'resource-write-scope',
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
  }
}

const invokedDirectly = process.argv[1] !== undefined
  && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href
if (invokedDirectly) await main(hideBin(process.argv))
