import { readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { isAbsolute, join } from 'node:path'
import { UsageError } from './errors.js'

export const CLIENT_NAME = 'mrmat-ts-api-fastify-client'
/** The folder under XDG_CONFIG_HOME and XDG_CACHE_HOME: the package's, which the server and the client share. */
export const APP_FOLDER = 'mrmat-ts-api-fastify'
export const DEFAULT_READ_SCOPE = 'mrmat-ts-api-fastify-resource-read'
export const DEFAULT_WRITE_SCOPE = 'mrmat-ts-api-fastify-resource-write'
export const DEFAULT_TIMEOUT_SECONDS = 30
const DISCOVERY_PATH = '.well-known/openid-configuration'

/** The client's configuration once flags, MRMAT_CLIENT_* variables and the config file are merged and checked. */
export interface ClientSettings {
  /** The config file consulted (it may not exist unless named by --config or MRMAT_CLIENT_CONFIG). */
  configFile: string
  clientId: string | undefined
  clientSecret: string | undefined
  /** The provider's discovery document. */
  discoveryUrl: URL | undefined
  /** The API's base URL, its path ending in '/' so that API paths resolve below it. */
  server: URL | undefined
  readScope: string
  writeScope: string
  /** Bound on every HTTP request, body included. */
  timeoutMs: number
  quiet: boolean
  debug: boolean
  json: boolean
}

type Kind = 'string' | 'url' | 'scope' | 'seconds' | 'boolean'

interface Setting {
  flag: string
  env: string
  /** The key in the config file (the seed's snake_case names); none for the output switches. */
  file?: string
  kind: Kind
}

const SETTINGS = {
  clientId: { flag: 'client-id', env: 'MRMAT_CLIENT_ID', file: 'client_id', kind: 'string' },
  clientSecret: { flag: 'client-secret', env: 'MRMAT_CLIENT_SECRET', file: 'client_secret', kind: 'string' },
  discoveryUrl: { flag: 'discovery-url', env: 'MRMAT_CLIENT_DISCOVERY_URL', file: 'discovery_url', kind: 'url' },
  server: { flag: 'server', env: 'MRMAT_CLIENT_SERVER', file: 'server', kind: 'url' },
  readScope: { flag: 'read-scope', env: 'MRMAT_CLIENT_READ_SCOPE', file: 'read_scope', kind: 'scope' },
  writeScope: { flag: 'write-scope', env: 'MRMAT_CLIENT_WRITE_SCOPE', file: 'write_scope', kind: 'scope' },
  timeout: { flag: 'timeout', env: 'MRMAT_CLIENT_TIMEOUT', file: 'timeout', kind: 'seconds' },
  quiet: { flag: 'quiet', env: 'MRMAT_CLIENT_QUIET', kind: 'boolean' },
  debug: { flag: 'debug', env: 'MRMAT_CLIENT_DEBUG', kind: 'boolean' },
  json: { flag: 'json', env: 'MRMAT_CLIENT_JSON', kind: 'boolean' },
} as const satisfies Record<string, Setting>

type SettingName = keyof typeof SETTINGS

export const CONFIG_ENV = 'MRMAT_CLIENT_CONFIG'
const FILE_KEYS: string[] = Object.values(SETTINGS as Record<string, Setting>).flatMap((setting) => setting.file ?? [])

/** An XDG base directory: the variable when it is an absolute path (the spec says to ignore relative ones), else ~/<fallback>. */
export function xdgDir(env: NodeJS.ProcessEnv, variable: 'XDG_CONFIG_HOME' | 'XDG_CACHE_HOME', fallback: string): string {
  const value = env[variable]
  if (value !== undefined && isAbsolute(value)) return value
  return join(env.HOME !== undefined && env.HOME !== '' ? env.HOME : homedir(), fallback)
}

export function defaultConfigFile(env: NodeJS.ProcessEnv): string {
  return join(xdgDir(env, 'XDG_CONFIG_HOME', '.config'), APP_FOLDER, 'client.json')
}

function readConfigFile(path: string, explicit: boolean): Record<string, unknown> | undefined {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    // The default file is optional: flags and variables can carry everything.
    if (!explicit && code === 'ENOENT') return undefined
    throw new UsageError(`cannot read the config file ${path}: ${code ?? (error as Error).message}`)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    throw new UsageError(`the config file ${path} is not valid JSON: ${(error as Error).message}`)
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(`the config file ${path} must hold a JSON object`)
  }
  const unknown = Object.keys(parsed).find((key) => !FILE_KEYS.includes(key))
  if (unknown !== undefined) {
    throw new UsageError(`the config file ${path} has an unknown key "${unknown}" (known: ${FILE_KEYS.join(', ')})`)
  }
  return parsed as Record<string, unknown>
}

/** Where a value came from, for error messages that let the user find and fix it. */
function origin(setting: Setting, from: 'flag' | 'env' | 'file', file: string): string {
  if (from === 'flag') return `--${setting.flag}`
  if (from === 'env') return setting.env
  return `"${setting.file ?? ''}" in ${file}`
}

function httpUrl(value: string, where: string): URL {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new UsageError(`${where} is not a URL: ${JSON.stringify(value)}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`${where} must be an http or https URL: ${value}`)
  if (url.username !== '' || url.password !== '') throw new UsageError(`${where} must not hold a user name or password`)
  if (url.search !== '' || url.hash !== '') throw new UsageError(`${where} must not have a query or fragment: ${value}`)
  return url
}

/** The API's base URL with a trailing slash, so that `new URL('api/…', server)` keeps a path prefix such as /mrmat/. */
function serverUrl(value: string, where: string): URL {
  const url = httpUrl(value, where)
  if (!url.pathname.endsWith('/')) url.pathname += '/'
  return url
}

/** The discovery document's URL; an issuer URL is completed the way OpenID Connect Discovery derives it. */
function discoveryUrl(value: string, where: string): URL {
  const url = httpUrl(value, where)
  if (!url.pathname.includes('/.well-known/')) {
    url.pathname = `${url.pathname.endsWith('/') ? url.pathname : `${url.pathname}/`}${DISCOVERY_PATH}`
  }
  return url
}

const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/

/** Parses the boolean spellings a variable may use. */
export function envBoolean(value: string, where: string): boolean {
  if (/^(1|true|yes|on)$/i.test(value)) return true
  if (/^(0|false|no|off)$/i.test(value)) return false
  throw new UsageError(`${where} must be true or false, not ${JSON.stringify(value)}`)
}

/** A positive number of seconds, from a flag (yargs gives NaN for junk), a variable or the file. */
export function seconds(value: unknown, where: string, options: { min: number, max: number }): number {
  const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value
  if (typeof number !== 'number' || !Number.isFinite(number)) {
    throw new UsageError(`${where} must be a number of seconds${typeof value === 'string' ? `, not ${JSON.stringify(value)}` : ''}`)
  }
  if (number < options.min || number > options.max) {
    throw new UsageError(`${where} must be between ${options.min} and ${options.max} seconds, not ${number}`)
  }
  return number
}

/**
 * Merges and checks the settings once, before anything is sent: a flag beats a MRMAT_CLIENT_* variable, a variable
 * beats the config file. `flags` holds what yargs parsed, undefined where a flag was not given.
 */
export function resolveSettings(flags: Record<string, unknown>, env: NodeJS.ProcessEnv): ClientSettings {
  const explicitFile = typeof flags.config === 'string' ? flags.config : env[CONFIG_ENV] !== '' ? env[CONFIG_ENV] : undefined
  const configFile = explicitFile ?? defaultConfigFile(env)
  const file = readConfigFile(configFile, explicitFile !== undefined)

  function pick(name: SettingName): { value: unknown, where: string } | undefined {
    const setting: Setting = SETTINGS[name]
    const flag = flags[setting.flag]
    if (flag !== undefined) return { value: flag, where: origin(setting, 'flag', configFile) }
    const variable = env[setting.env]
    if (variable !== undefined && variable !== '') {
      return { value: setting.kind === 'boolean' ? envBoolean(variable, setting.env) : variable, where: origin(setting, 'env', configFile) }
    }
    const fromFile = setting.file === undefined ? undefined : file?.[setting.file]
    if (fromFile !== undefined) return { value: fromFile, where: origin(setting, 'file', configFile) }
    return undefined
  }

  function text(name: SettingName): { value: string, where: string } | undefined {
    const picked = pick(name)
    if (picked === undefined) return undefined
    if (typeof picked.value !== 'string') throw new UsageError(`${picked.where} must be a string`)
    if (picked.value === '') return undefined
    return { value: picked.value, where: picked.where }
  }

  function scope(name: 'readScope' | 'writeScope', fallback: string): string {
    const picked = text(name)
    if (picked === undefined) return fallback
    if (!SCOPE_TOKEN.test(picked.value)) throw new UsageError(`${picked.where} must be one scope without spaces or quotes: ${JSON.stringify(picked.value)}`)
    return picked.value
  }

  const flag = (name: 'quiet' | 'debug' | 'json'): boolean => pick(name)?.value === true
  const server = text('server')
  const discovery = text('discoveryUrl')
  const timeout = pick('timeout')
  const quiet = flag('quiet')
  const debug = flag('debug')
  if (quiet && debug) throw new UsageError('--quiet and --debug contradict each other: pick one')
  return {
    configFile,
    clientId: text('clientId')?.value,
    clientSecret: text('clientSecret')?.value,
    discoveryUrl: discovery === undefined ? undefined : discoveryUrl(discovery.value, discovery.where),
    server: server === undefined ? undefined : serverUrl(server.value, server.where),
    readScope: scope('readScope', DEFAULT_READ_SCOPE),
    writeScope: scope('writeScope', DEFAULT_WRITE_SCOPE),
    timeoutMs: timeout === undefined ? DEFAULT_TIMEOUT_SECONDS * 1000 : seconds(timeout.value, timeout.where, { min: 1, max: 600 }) * 1000,
    quiet,
    debug,
    json: flag('json'),
  }
}

const HOW_TO_SET: Record<'server' | 'clientId' | 'discoveryUrl' | 'clientSecret', { what: string, setting: Setting }> = {
  server: { what: 'no server is configured', setting: SETTINGS.server },
  clientId: { what: 'no client id is configured', setting: SETTINGS.clientId },
  discoveryUrl: { what: 'no discovery URL is configured', setting: SETTINGS.discoveryUrl },
  clientSecret: { what: 'login --client-credentials needs a client secret', setting: SETTINGS.clientSecret },
}

/** What a command needs, present; otherwise one line saying how to set the first missing one. */
export function requireSettings<K extends keyof typeof HOW_TO_SET>(
  settings: ClientSettings,
  names: K[],
): ClientSettings & { [P in K]: NonNullable<ClientSettings[P]> } {
  for (const name of names) {
    if (settings[name] === undefined) {
      const { what, setting } = HOW_TO_SET[name]
      throw new UsageError(`${what}: set --${setting.flag}, ${setting.env} or "${setting.file ?? ''}" in ${settings.configFile}`)
    }
  }
  return settings as ClientSettings & { [P in K]: NonNullable<ClientSettings[P]> }
}

/** The server URL as people write it: without the trailing slash added for resolving paths. */
export function displayUrl(url: URL): string {
  const text = url.href
  return url.pathname === '/' && text.endsWith('/') ? text.slice(0, -1) : text
}
