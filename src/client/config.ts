import { homedir } from 'node:os'
import { isAbsolute, join } from 'node:path'
import { DEFAULT_READ_SCOPE, DEFAULT_WRITE_SCOPE } from '#plugins/resource/v1/contract.js'
import { readConfigFile } from '../lib/config-file.js'
import { UsageError } from './errors.js'

export { DEFAULT_READ_SCOPE, DEFAULT_WRITE_SCOPE }
export const CLIENT_NAME = 'mrmat-ts-api-fastify-client'
/** The folder under XDG_CONFIG_HOME and XDG_CACHE_HOME: the package's, which the server and the client share. */
export const APP_FOLDER = 'mrmat-ts-api-fastify'
export const DEFAULT_TIMEOUT_SECONDS = 30
const DISCOVERY_PATH = '.well-known/openid-configuration'

/** How a setting's text is checked and what it becomes. */
interface KindValues {
  string: string
  serverUrl: URL
  discoveryUrl: URL
  scope: string
  seconds: number
  boolean: boolean
}
type Kind = keyof KindValues

interface Setting {
  kind: Kind
  group: string
  description: string
  /** Left out, the setting is undefined unless given. */
  default?: string | number | boolean
  defaultDescription?: string
  alias?: string
  /** The variable, when not MRMAT_CLIENT_ + the name in capitals. */
  env?: string
  /** The config-file key, when not the name in snake_case; false: the file cannot set it. */
  file?: string | false
}

const GROUPS = { server: 'Server', provider: 'Identity provider', output: 'Output' } as const

/**
 * Every setting of the client, once: its flag (the kebab-case of the name), MRMAT_CLIENT_* variable, config-file key
 * (the seed's snake_case), --help entry, check and type all come from here. No schema library: the client is a
 * command people run many times, and it would cost every run hundreds of module loads.
 */
const CLIENT_OPTIONS = {
  server: { kind: 'serverUrl', group: GROUPS.server, description: 'The API\'s base URL, e.g. http://localhost:8080' },
  timeout: {
    kind: 'seconds',
    group: GROUPS.server,
    default: DEFAULT_TIMEOUT_SECONDS,
    description: 'Seconds each HTTP request may take',
  },
  discoveryUrl: {
    kind: 'discoveryUrl',
    group: GROUPS.provider,
    description: 'The identity provider\'s discovery document URL (or its issuer URL)',
  },
  clientId: {
    kind: 'string',
    group: GROUPS.provider,
    env: 'MRMAT_CLIENT_ID',
    description: 'This client\'s id at the identity provider',
  },
  clientSecret: {
    kind: 'string',
    group: GROUPS.provider,
    env: 'MRMAT_CLIENT_SECRET',
    description: 'This client\'s secret; public clients have none',
  },
  readScope: {
    kind: 'scope',
    group: GROUPS.provider,
    default: DEFAULT_READ_SCOPE,
    description: 'The API\'s read scope',
  },
  writeScope: {
    kind: 'scope',
    group: GROUPS.provider,
    default: DEFAULT_WRITE_SCOPE,
    description: 'The API\'s write scope',
  },
  quiet: {
    kind: 'boolean',
    group: GROUPS.output,
    alias: 'q',
    default: false,
    file: false,
    description: 'Only results and errors: no progress or notes',
  },
  debug: {
    kind: 'boolean',
    group: GROUPS.output,
    alias: 'd',
    default: false,
    file: false,
    description: 'A line per HTTP exchange, and stack traces of unexpected errors',
  },
  json: {
    kind: 'boolean',
    group: GROUPS.output,
    default: false,
    file: false,
    description: 'Results as JSON on stdout (one line each)',
  },
} as const satisfies Record<string, Setting>

type SettingName = keyof typeof CLIENT_OPTIONS
type SettingValue<S extends Setting> = S extends { default: unknown }
  ? KindValues[S['kind']]
  : KindValues[S['kind']] | undefined

/** The client's configuration once flags, MRMAT_CLIENT_* variables and the config file are merged and checked. */
export type ClientSettings = { -readonly [K in SettingName]: SettingValue<(typeof CLIENT_OPTIONS)[K]> } & {
  /** The config file consulted (it may not exist unless named by --config or MRMAT_CLIENT_CONFIG). */
  configFile: string
}

const kebab = (name: string): string => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
const snake = (name: string): string => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

function naming(name: string, setting: Setting): { flag: string, env: string, file: string | undefined } {
  return {
    flag: kebab(name),
    env: setting.env ?? `MRMAT_CLIENT_${snake(name).toUpperCase()}`,
    file: setting.file === false ? undefined : setting.file ?? snake(name),
  }
}

const SETTINGS: [SettingName, Setting][] = Object.entries(CLIENT_OPTIONS) as [SettingName, Setting][]

/** The settings as yargs options; defaults are shown, not applied, so that a flag not given lets a variable through. */
export function clientYargsOptions(): Record<string, {
  type: 'string' | 'number' | 'boolean',
  description: string,
  group: string,
  alias?: string,
  defaultDescription?: string,
}> {
  return Object.fromEntries(SETTINGS.map(([name, setting]) => {
    const shown = setting.defaultDescription
      ?? (setting.default === undefined || setting.default === false ? undefined : String(setting.default))
    return [naming(name, setting).flag, {
      type: setting.kind === 'boolean' ? 'boolean' : setting.kind === 'seconds' ? 'number' : 'string',
      // A flag other than a switch needs its value: `--timeout` alone is a mistake, not the default.
      requiresArg: setting.kind !== 'boolean',
      description: setting.description,
      group: `${setting.group}:`,
      ...(setting.alias === undefined ? {} : { alias: setting.alias }),
      ...(shown === undefined ? {} : { defaultDescription: shown }),
    }]
  }))
}

export const CONFIG_ENV = 'MRMAT_CLIENT_CONFIG'
const FILE_KEYS: string[] = SETTINGS.flatMap(([name, setting]) => naming(name, setting).file ?? [])

/**
 * An XDG base directory: the variable when it is an absolute path (the spec says to ignore relative ones), else
 * ~/<fallback>.
 */
export function xdgDir(
  env: NodeJS.ProcessEnv,
  variable: 'XDG_CONFIG_HOME' | 'XDG_CACHE_HOME',
  fallback: string,
): string {
  const value = env[variable]
  if (value !== undefined && isAbsolute(value)) return value
  return join(env.HOME !== undefined && env.HOME !== '' ? env.HOME : homedir(), fallback)
}

export function defaultConfigFile(env: NodeJS.ProcessEnv): string {
  return join(xdgDir(env, 'XDG_CONFIG_HOME', '.config'), APP_FOLDER, 'client.json')
}

function httpUrl(value: string, where: string): URL {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new UsageError(`${where} is not a URL: ${JSON.stringify(value)}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`${where} must be an http or https URL: ${value}`)
  }
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
    const given = typeof value === 'string' ? `, not ${JSON.stringify(value)}` : ''
    throw new UsageError(`${where} must be a number of seconds${given}`)
  }
  if (number < options.min || number > options.max) {
    throw new UsageError(`${where} must be between ${options.min} and ${options.max} seconds, not ${number}`)
  }
  return number
}

/** A setting's value, checked, as its kind makes it; `where` names its source in the message when it is wrong. */
function check(kind: Kind, value: unknown, where: string): KindValues[Kind] | undefined {
  if (kind === 'boolean') {
    if (typeof value === 'string') return envBoolean(value, where)
    if (typeof value !== 'boolean') throw new UsageError(`${where} must be true or false`)
    return value
  }
  if (kind === 'seconds') return seconds(value, where, { min: 1, max: 600 })
  if (typeof value !== 'string') throw new UsageError(`${where} must be a string`)
  if (value === '') return undefined
  if (kind === 'serverUrl') return serverUrl(value, where)
  if (kind === 'discoveryUrl') return discoveryUrl(value, where)
  if (kind === 'scope' && !SCOPE_TOKEN.test(value)) {
    throw new UsageError(`${where} must be one scope without spaces or quotes: ${JSON.stringify(value)}`)
  }
  return value
}

/**
 * Merges and checks the settings once, before anything is sent: a flag beats a MRMAT_CLIENT_* variable, a variable
 * beats the config file, the file beats the default. `flags` holds what yargs parsed, undefined where a flag was not
 * given.
 */
export function resolveSettings(flags: Record<string, unknown>, env: NodeJS.ProcessEnv): ClientSettings {
  const explicitFile = typeof flags.config === 'string'
    ? flags.config
    : env[CONFIG_ENV] !== '' ? env[CONFIG_ENV] : undefined
  const configFile = explicitFile ?? defaultConfigFile(env)
  // The default file is optional: flags and variables can carry everything.
  const file = readConfigFile(configFile, FILE_KEYS, explicitFile === undefined)
  const settings: Record<string, unknown> = { configFile }
  for (const [name, setting] of SETTINGS) {
    const { flag, env: variable, file: key } = naming(name, setting)
    let value: unknown
    if (flags[name] !== undefined) value = check(setting.kind, flags[name], `--${flag}`)
    else if (env[variable] !== undefined && env[variable] !== '') value = check(setting.kind, env[variable], variable)
    else if (key !== undefined && file?.[key] !== undefined) {
      value = check(setting.kind, file[key], `"${key}" in ${configFile}`)
    }
    settings[name] = value ?? setting.default
  }
  const resolved = settings as ClientSettings
  if (resolved.quiet && resolved.debug) throw new UsageError('--quiet and --debug contradict each other: pick one')
  return resolved
}

const HOW_TO_SET: Record<'server' | 'clientId' | 'discoveryUrl' | 'clientSecret', string> = {
  server: 'no server is configured',
  clientId: 'no client id is configured',
  discoveryUrl: 'no discovery URL is configured',
  clientSecret: 'login --client-credentials needs a client secret',
}

/** What a command needs, present; otherwise one line saying how to set the first missing one. */
export function requireSettings<K extends keyof typeof HOW_TO_SET>(
  settings: ClientSettings,
  names: K[],
): ClientSettings & { [P in K]: NonNullable<ClientSettings[P]> } {
  for (const name of names) {
    if (settings[name] === undefined) {
      const { flag, env, file } = naming(name, CLIENT_OPTIONS[name])
      throw new UsageError(`${HOW_TO_SET[name]}: set --${flag}, ${env} or "${file ?? ''}" in ${settings.configFile}`)
    }
  }
  return settings as ClientSettings & { [P in K]: NonNullable<ClientSettings[P]> }
}

/** The server URL as people write it: without the trailing slash added for resolving paths. */
export function displayUrl(url: URL): string {
  const text = url.href
  return url.pathname === '/' && text.endsWith('/') ? text.slice(0, -1) : text
}
