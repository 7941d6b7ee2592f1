import { Kind, type Static, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { readConfigFile } from './config-file.js'
import { ConfigError } from './errors.js'

/**
 * One option of a CLI, declared once: its flag, variable, config-file key, --help entry, validation and type all
 * come from this entry and its name in the table (camelCase; the flag is the kebab-case of it).
 */
export interface OptionSpec {
  /** The heading --help lists it under. */
  group: string
  description: string
  /** What a value must be. Text from a variable (or a flag yargs reads as text) is first read as this type. */
  schema: TSchema
  /** Left out, the option is undefined unless given. */
  default?: unknown
  /** How --help shows the default when it is not a plain value. */
  defaultDescription?: string
  /** What the option expects, in words, for its error message instead of the schema's own. */
  expected?: string
  alias?: string
  /** The variable, when not the table's prefix + the name in capitals. */
  env?: string
  /** The config-file key, when not the table's spelling of the name; false: the file cannot set it. */
  file?: string | false
  /** Also a setting of buildApp (AppOptions) under the same name. */
  app?: true
  /** Turns the checked value into what the program uses, or throws a ConfigError naming `where`. */
  parse?: (value: never, where: string) => unknown
}

export type OptionTable = Record<string, OptionSpec>

/** How a table's names become variables and config-file keys. */
export interface TableNaming {
  /** `MRMAT_`: `instancePath` is then read from MRMAT_INSTANCE_PATH. */
  envPrefix: string
  /** The config file's spelling of `instancePath`: `instance-path` (kebab) or `instance_path` (snake). */
  fileCase: 'kebab' | 'snake'
}

type Used<O extends OptionSpec> = O extends { parse: (value: never, where: string) => infer R }
  ? R
  : Static<O['schema']>

/** The values a table yields once resolved: parsed where the option parses, undefined where it has no default. */
export type OptionValues<T extends OptionTable> = {
  -readonly [K in keyof T]: T[K] extends { default: unknown } ? Used<T[K]> : Used<T[K]> | undefined
}

/** The names of a table's options that are settings of buildApp too. */
export type AppOptionNames<T extends OptionTable> = { [K in keyof T]: T[K] extends { app: true } ? K : never }[keyof T]

const kebab = (name: string): string => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
const snake = (name: string): string => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

export function flagOf(name: string): string {
  return kebab(name)
}

export function envOf(name: string, spec: OptionSpec, naming: TableNaming): string {
  return spec.env ?? `${naming.envPrefix}${snake(name).toUpperCase()}`
}

export function fileKeyOf(name: string, spec: OptionSpec, naming: TableNaming): string | undefined {
  if (spec.file === false) return undefined
  return spec.file ?? (naming.fileCase === 'kebab' ? kebab(name) : snake(name))
}

function yargsType(schema: TSchema): 'boolean' | 'number' | 'string' {
  const kind = schema[Kind]
  if (kind === 'Boolean') return 'boolean'
  return kind === 'Integer' || kind === 'Number' ? 'number' : 'string'
}

export interface YargsOption {
  type: 'boolean' | 'number' | 'string'
  /** A flag other than a switch needs its value: `--port` alone is a mistake, not the default. */
  requiresArg: boolean
  description: string
  group: string
  alias?: string
  defaultDescription?: string
}

/**
 * The table as yargs options. Defaults are shown, not applied: yargs would fill them in, and then a flag that was
 * not given could not be told from one given with the default value, nor a variable or the file let through.
 */
export function yargsOptions(table: OptionTable): Record<string, YargsOption> {
  return Object.fromEntries(Object.entries(table).map(([name, spec]) => {
    const shown = spec.defaultDescription ?? (spec.default === undefined ? undefined : JSON.stringify(spec.default))
    const type = yargsType(spec.schema)
    const group = `${spec.group}:`
    const option: YargsOption = { type, requiresArg: type !== 'boolean', description: spec.description, group }
    if (spec.alias !== undefined) option.alias = spec.alias
    if (shown !== undefined) option.defaultDescription = shown
    return [flagOf(name), option]
  }))
}

const INTEGER_TEXT = /^\s*[+-]?\d+\s*$/
const NUMBER_TEXT = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/

/** Reads the words variables use for true and false. */
export function booleanText(text: string, where: string): boolean {
  if (/^(1|true|yes|on)$/i.test(text.trim())) return true
  if (/^(0|false|no|off)$/i.test(text.trim())) return false
  throw new ConfigError(`invalid ${where} (${JSON.stringify(text)}): expected true or false`)
}

/** Text (a variable, a flag read as text) as the schema's type; what cannot be read stays text and fails validation. */
function fromText(schema: TSchema, text: string, where: string): unknown {
  switch (schema[Kind]) {
    case 'Boolean':
      return booleanText(text, where)
    case 'Integer':
      return INTEGER_TEXT.test(text) ? Number(text) : Number.NaN
    case 'Number':
      return NUMBER_TEXT.test(text) ? Number(text) : Number.NaN
    case 'Union': {
      for (const member of (schema as unknown as { anyOf: TSchema[] }).anyOf) {
        if ((member[Kind]) === 'Boolean' && !/^(true|false)$/i.test(text.trim())) continue
        const value = fromText(member, text, where)
        if (Value.Check(member, value)) return value
      }
      return text
    }
    default:
      return text
  }
}

function describeValue(value: unknown): string {
  return typeof value === 'number' && Number.isNaN(value) ? 'not a number' : JSON.stringify(value)
}

export interface OptionSources {
  /** What yargs parsed (camelCase keys); undefined where a flag was not given. */
  flags: Record<string, unknown>
  env: NodeJS.ProcessEnv
  /** The config file, when one is named. */
  configFile?: string | undefined
}

/** The config-file keys of a table. */
export function fileKeys(table: OptionTable, naming: TableNaming): string[] {
  return Object.entries(table).flatMap(([name, spec]) => fileKeyOf(name, spec, naming) ?? [])
}

/**
 * Every option of the table from the first source that gives it: a flag, else its variable, else the config file,
 * else its default. Each value is validated against its schema and parsed; an error names where the bad value came
 * from (`--port`, `MRMAT_PORT`, `"port" in /etc/mrmat.json`), and a config-file key the table does not know is refused.
 */
export function resolveOptions<T extends OptionTable>(
  table: T,
  naming: TableNaming,
  sources: OptionSources,
): OptionValues<T> {
  const path = sources.configFile
  const values = path === undefined ? undefined : readConfigFile(path, fileKeys(table, naming))
  const file = path === undefined || values === undefined ? undefined : { path, values }
  const resolved: Record<string, unknown> = {}
  for (const [name, spec] of Object.entries(table)) {
    const flag = `--${flagOf(name)}`
    const env = envOf(name, spec, naming)
    const fileKey = fileKeyOf(name, spec, naming)
    let given: { value: unknown, where: string } | undefined
    if (sources.flags[name] !== undefined) given = { value: sources.flags[name], where: flag }
    else if (sources.env[env] !== undefined && sources.env[env] !== '') given = { value: sources.env[env], where: env }
    else if (file !== undefined && fileKey !== undefined && file.values[fileKey] !== undefined) {
      given = { value: file.values[fileKey], where: `"${fileKey}" in ${file.path}` }
    } else if (spec.default !== undefined) given = { value: spec.default, where: flag }
    if (given === undefined) {
      resolved[name] = undefined
      continue
    }
    const { where } = given
    const value = typeof given.value === 'string' && (spec.schema[Kind]) !== 'String'
      ? fromText(spec.schema, given.value, where)
      : given.value
    const error = Value.Errors(spec.schema, value).First()
    if (error !== undefined) {
      const shown = describeValue(typeof given.value === 'string' ? given.value : value)
      throw new ConfigError(`invalid ${where} (${shown}): ${spec.expected ?? error.message.toLowerCase()}`)
    }
    resolved[name] = spec.parse === undefined ? value : spec.parse(value as never, where)
  }
  return resolved as OptionValues<T>
}

/** The table as Markdown for the README: one row per option, grouped as --help groups them. */
export function optionsMarkdown(table: OptionTable, naming: TableNaming): string {
  const rows = ['| Option | Variable | Default | |', '|---|---|---|---|']
  let group: string | undefined
  for (const [name, spec] of Object.entries(table)) {
    if (spec.group !== group) {
      group = spec.group
      rows.push(`| **${group}** | | | |`)
    }
    const flag = `\`--${flagOf(name)}\`${spec.alias === undefined ? '' : `, \`-${spec.alias}\``}`
    const value = spec.default === undefined ? 'none' : `\`${JSON.stringify(spec.default).replace(/^"|"$/g, '')}\``
    const shown = spec.defaultDescription ?? value
    rows.push(`| ${flag} | \`${envOf(name, spec, naming)}\` | ${shown} | ${spec.description.replaceAll('|', '\\|')} |`)
  }
  return rows.join('\n')
}
