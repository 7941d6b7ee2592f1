import { accessSync, constants, mkdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { AuthSettingsError, readClientSecrets, resolveAuthSettings, type AuthSettings } from './auth/settings.js'
import { DatabaseUrlError, parseDatabaseUrl, type DatabaseLocation } from './db/url.js'

/** A configuration value that cannot be used; the CLI prints the message on one line and exits 2. */
export class ConfigError extends Error {}

export const DEFAULT_DATABASE_FILE = 'mrmat-ts-api-fastify.sqlite'

/** What the CLI hands over once yargs has merged flags, MRMAT_* variables, the config file and defaults. */
export const ServerOptionsSchema = Type.Object({
  debug: Type.Boolean(),
  host: Type.String({ minLength: 1 }),
  port: Type.Integer({ minimum: 0, maximum: 65535 }),
  instancePath: Type.String({ minLength: 1 }),
  db: Type.Optional(Type.String({ minLength: 1 })),
  oidcSecrets: Type.Optional(Type.String({ minLength: 1 })),
  issuer: Type.Optional(Type.String({ minLength: 1 })),
  audience: Type.Optional(Type.String({ minLength: 1 })),
  jwksUri: Type.Optional(Type.String({ minLength: 1 })),
  clockTolerance: Type.Integer({ minimum: 0, maximum: 600 }),
  dbPoolSize: Type.Integer({ minimum: 1, maximum: 1000 }),
  resourceReadScope: Type.String({ minLength: 1, pattern: '^[\\x21\\x23-\\x5B\\x5D-\\x7E]+$' }),
  resourceWriteScope: Type.String({ minLength: 1, pattern: '^[\\x21\\x23-\\x5B\\x5D-\\x7E]+$' }),
})
export type ServerOptions = Static<typeof ServerOptionsSchema>

/** The server's configuration, validated: the rest of the code trusts it. */
export interface ServerConfig {
  debug: boolean
  host: string
  port: number
  /** Absolute, and created if it did not exist. */
  instancePath: string
  database: DatabaseLocation
  /** Absolute path of a readable client-secrets JSON file. */
  oidcSecrets: string | undefined
  /** The identity provider to trust; undefined runs without authentication. */
  auth: AuthSettings | undefined
  /** Connections in the PostgreSQL pool. */
  dbPoolSize: number
  resourceScopes: { readScope: string, writeScope: string }
}

const FLAGS: Record<string, string> = {
  debug: '--debug',
  host: '--host',
  port: '--port',
  instancePath: '--instance-path',
  db: '--db',
  oidcSecrets: '--oidc-secrets',
  issuer: '--issuer',
  audience: '--audience',
  jwksUri: '--jwks-uri',
  clockTolerance: '--clock-tolerance',
  dbPoolSize: '--db-pool-size',
  resourceReadScope: '--resource-read-scope',
  resourceWriteScope: '--resource-write-scope',
}

function checkOptions(raw: Record<string, unknown>): ServerOptions {
  const options = Object.fromEntries(
    Object.keys(FLAGS).filter((key) => raw[key] !== undefined).map((key) => [key, raw[key]]),
  )
  const error = Value.Errors(ServerOptionsSchema, options).First()
  if (error !== undefined) {
    const key = error.path.split('/')[1] ?? ''
    const given = Number.isNaN(error.value) ? 'not a number' : JSON.stringify(error.value)
    throw new ConfigError(`invalid ${FLAGS[key] ?? key} (${given}): ${error.message.toLowerCase()}`)
  }
  return options as ServerOptions
}

/** Reads the JSON config file named by --config or MRMAT_CONFIG; keys are the long option names. */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw new ConfigError(`cannot read the config file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    throw new ConfigError(`the config file ${path} is not valid JSON: ${(error as Error).message}`)
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`the config file ${path} must hold a JSON object`)
  }
  return parsed as Record<string, unknown>
}

function readableFile(path: string, flag: string): string {
  const absolute = resolve(path)
  try {
    accessSync(absolute, constants.R_OK)
  } catch (error) {
    throw new ConfigError(`cannot read ${flag} ${absolute}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`)
  }
  return absolute
}

/** Validates the merged options once, at the edge, and resolves paths and the database location. */
export function resolveServerConfig(raw: Record<string, unknown>): ServerConfig {
  const options = checkOptions(raw)
  const instancePath = resolve(options.instancePath)
  let database: DatabaseLocation
  try {
    database = parseDatabaseUrl(options.db ?? join(instancePath, DEFAULT_DATABASE_FILE))
  } catch (error) {
    if (error instanceof DatabaseUrlError) throw new ConfigError(`invalid --db: ${error.message}`)
    throw error
  }
  const oidcSecrets = options.oidcSecrets === undefined ? undefined : readableFile(options.oidcSecrets, '--oidc-secrets')
  let auth: AuthSettings | undefined
  try {
    auth = resolveAuthSettings({
      secrets: oidcSecrets === undefined ? undefined : readClientSecrets(oidcSecrets),
      issuer: options.issuer,
      audience: options.audience,
      jwksUri: options.jwksUri,
      clockTolerance: options.clockTolerance,
    })
  } catch (error) {
    if (error instanceof AuthSettingsError) throw new ConfigError(error.message)
    throw error
  }
  // Created last, so that a rejected configuration leaves nothing behind.
  try {
    mkdirSync(instancePath, { recursive: true })
  } catch (error) {
    throw new ConfigError(`cannot create --instance-path ${instancePath}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
  }
  return {
    debug: options.debug,
    host: options.host,
    port: options.port,
    instancePath,
    database,
    oidcSecrets,
    auth,
    dbPoolSize: options.dbPoolSize,
    resourceScopes: { readScope: options.resourceReadScope, writeScope: options.resourceWriteScope },
  }
}
