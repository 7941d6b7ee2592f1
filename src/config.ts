import { accessSync, constants, mkdirSync, readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { availableParallelism } from 'node:os'
import { join, resolve } from 'node:path'
import { getHeapStatistics } from 'node:v8'
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { AuthSettingsError, readClientSecrets, resolveAuthSettings, type AuthSettings } from './auth/settings.js'
import { DatabaseUrlError, parseDatabaseUrl, SQLITE_MEMORY, type DatabaseLocation } from './db/url.js'

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
  workers: Type.Union([Type.Literal('auto'), Type.Integer({ minimum: 1, maximum: 256 })]),
  shutdownTimeout: Type.Integer({ minimum: 1, maximum: 3_600_000 }),
  shutdownDelay: Type.Integer({ minimum: 0, maximum: 3_600_000 }),
  trustProxy: Type.Union([Type.Boolean(), Type.Integer({ minimum: 0, maximum: 100 }), Type.String()]),
  bodyLimit: Type.Integer({ minimum: 1, maximum: 1024 ** 3 }),
  keepAliveTimeout: Type.Integer({ minimum: 1, maximum: 3_600_000 }),
  requestTimeout: Type.Integer({ minimum: 0, maximum: 3_600_000 }),
  headersTimeout: Type.Integer({ minimum: 1, maximum: 3_600_000 }),
  maxEventLoopDelay: Type.Integer({ minimum: 0 }),
  maxHeapUsed: Type.Number({ minimum: 0 }),
  maxRss: Type.Integer({ minimum: 0 }),
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
  /** Worker processes; 1 serves from this process without node:cluster. */
  workers: number
  /** Longest a graceful shutdown may take, in milliseconds, before the process exits 1 regardless. */
  shutdownTimeout: number
  /** How long readiness answers 503 while still serving, before the listener closes, in milliseconds. */
  shutdownDelay: number
  /** Fastify's trustProxy: false, true, a hop count or the proxies' addresses. */
  trustProxy: TrustProxy
  http: HttpLimits
  pressure: PressureLimits
}

export type TrustProxy = boolean | number | string[]

/** Body size and socket timeouts of the HTTP server; times in milliseconds. */
export interface HttpLimits {
  bodyLimit: number
  keepAliveTimeout: number
  requestTimeout: number
  headersTimeout: number
}

/** Limits past which @fastify/under-pressure answers 503; 0 disables one. */
export interface PressureLimits {
  maxEventLoopDelay: number
  maxHeapUsedBytes: number
  maxRssBytes: number
}

/** Names proxy-addr (Fastify's trustProxy) knows for address ranges. */
const PROXY_RANGE_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal'])

function isAddressOrRange(entry: string): boolean {
  if (PROXY_RANGE_NAMES.has(entry)) return true
  const [address = '', prefix, ...rest] = entry.split('/')
  const family = isIP(address)
  if (family === 0 || rest.length > 0) return false
  if (prefix === undefined) return true
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128)
}

/**
 * --trust-proxy as Fastify's trustProxy takes it: true/false, a hop count, or a comma-separated list
 * of addresses and CIDR ranges. A bare `true` trusts whoever connects, so any client could forge its
 * address; behind a known proxy a hop count or its address is the safer choice.
 */
export function parseTrustProxy(value: boolean | number | string): TrustProxy {
  if (typeof value === 'boolean') return value
  if (typeof value === 'number') return value === 0 ? false : value
  const text = value.trim().toLowerCase()
  if (text === 'true' || text === 'false') return text === 'true'
  if (/^\d+$/.test(text) && Number(text) <= 100) return Number(text) === 0 ? false : Number(text)
  const entries = text.split(',').map((entry) => entry.trim())
  if (text !== '' && entries.every(isAddressOrRange)) return entries
  throw new ConfigError(
    `invalid --trust-proxy (${JSON.stringify(value)}): expected true, false, a hop count or a comma-separated list of addresses and CIDR ranges`,
  )
}

/** --max-heap-used: a ratio of V8's heap limit up to 1, else bytes. */
export function heapLimitBytes(value: number, heapSizeLimit: number): number {
  return value > 0 && value <= 1 ? Math.floor(value * heapSizeLimit) : Math.floor(value)
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
  workers: '--workers',
  shutdownTimeout: '--shutdown-timeout',
  shutdownDelay: '--shutdown-delay',
  trustProxy: '--trust-proxy',
  bodyLimit: '--body-limit',
  keepAliveTimeout: '--keep-alive-timeout',
  requestTimeout: '--request-timeout',
  headersTimeout: '--headers-timeout',
  maxEventLoopDelay: '--max-event-loop-delay',
  maxHeapUsed: '--max-heap-used',
  maxRss: '--max-rss',
}

/** --workers comes as a string (it may be `auto`); a config file may give a number. */
function workersValue(value: unknown): unknown {
  return typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value
}

function checkOptions(raw: Record<string, unknown>): ServerOptions {
  const options = Object.fromEntries(
    Object.keys(FLAGS).filter((key) => raw[key] !== undefined)
      .map((key) => [key, key === 'workers' ? workersValue(raw[key]) : raw[key]]),
  )
  const error = Value.Errors(ServerOptionsSchema, options).First()
  if (error !== undefined) {
    const key = error.path.split('/')[1] ?? ''
    const given = Number.isNaN(error.value) ? 'not a number' : JSON.stringify(error.value)
    const message = key === 'workers' ? 'expected auto or a whole number from 1 to 256' : error.message.toLowerCase()
    throw new ConfigError(`invalid ${FLAGS[key] ?? key} (${given}): ${message}`)
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
  const workers = options.workers === 'auto' ? availableParallelism() : options.workers
  if (workers > 1 && database.dialect === 'sqlite' && database.file === SQLITE_MEMORY) {
    throw new ConfigError('invalid --workers: an in-memory database is private to each process, so it needs --workers 1')
  }
  if (options.shutdownDelay >= options.shutdownTimeout) {
    throw new ConfigError(`invalid --shutdown-delay (${options.shutdownDelay}): must be shorter than --shutdown-timeout (${options.shutdownTimeout})`)
  }
  if (options.requestTimeout > 0 && options.headersTimeout > options.requestTimeout) {
    throw new ConfigError(`invalid --headers-timeout (${options.headersTimeout}): must not exceed --request-timeout (${options.requestTimeout})`)
  }
  const trustProxy = parseTrustProxy(options.trustProxy)
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
    workers,
    shutdownTimeout: options.shutdownTimeout,
    shutdownDelay: options.shutdownDelay,
    trustProxy,
    http: {
      bodyLimit: options.bodyLimit,
      keepAliveTimeout: options.keepAliveTimeout,
      requestTimeout: options.requestTimeout,
      headersTimeout: options.headersTimeout,
    },
    pressure: {
      maxEventLoopDelay: options.maxEventLoopDelay,
      maxHeapUsedBytes: heapLimitBytes(options.maxHeapUsed, getHeapStatistics().heap_size_limit),
      maxRssBytes: options.maxRss,
    },
  }
}
