import AjvCompiler, { type Options, type ValidatorFactory } from '@fastify/ajv-compiler'
import type { FastifySchemaValidationError } from 'fastify/types/schema.js'
import { recorder, restoreOrCompile, schemaContext } from './precompiled-schemas.js'

const buildCompiler = AjvCompiler()

/** How Fastify calls a validator: true when valid, else false with the reasons in `errors`. */
interface Validator {
  (data: unknown): boolean
  errors?: FastifySchemaValidationError[] | null
}

/** An integer in a path or query string: plain decimal digits, so `0x10`, `1e3`, ` 1` and `Infinity` are refused. */
const DECIMAL = /^-?[0-9]{1,16}$/

/** Bodies with more top-level members than this get their first error only: listing them all costs as they grow. */
const LISTED_MEMBERS = 64

function integerProperties(schema: unknown): string[] {
  const properties = (schema as { properties?: Record<string, { type?: unknown }> } | undefined)?.properties ?? {}
  return Object.entries(properties).filter(([, property]) => property.type === 'integer').map(([name]) => name)
}

/**
 * ajv would coerce any text Number() reads into an integer: a hex or exponent spelling, padding, even Infinity,
 * which then reaches the database. An integer of a path or query must be written in decimal digits, checked before
 * ajv coerces it.
 */
function decimalIntegers(validate: Validator, names: string[]): Validator {
  if (names.length === 0) return validate
  const checked: Validator = (data) => {
    for (const name of names) {
      const value = (data as Record<string, unknown> | null)?.[name]
      if (typeof value === 'string' && !DECIMAL.test(value)) {
        checked.errors = [{
          keyword: 'type',
          instancePath: `/${name}`,
          schemaPath: `#/properties/${name}/type`,
          params: { type: 'integer' },
          message: 'must be a whole number in decimal digits',
        }]
        return false
      }
    }
    const valid = validate(data)
    checked.errors = validate.errors ?? null
    return valid
  }
  return checked
}

function memberCount(data: unknown, atMost: number): number {
  if (typeof data !== 'object' || data === null) return 0
  let count = 0
  for (const key in data) {
    if (Object.hasOwn(data, key) && ++count > atMost) break
  }
  return count
}

/**
 * A valid body costs one pass that stops at the first error. Only an invalid body of reasonable size is checked a
 * second time to list every bad field: a hostile one (thousands of members, each an error) costs no more than a valid
 * one, and its answer lists the first error rather than megabytes of them.
 */
function firstThenAll(first: Validator, makeAll: () => Validator): Validator {
  // Compiled when a body first fails: most routes never see one, and compiling it at start cost an ajv compile a body.
  let all: Validator | undefined
  const validate: Validator = (data) => {
    if (first(data)) {
      validate.errors = null
      return true
    }
    if (memberCount(data, LISTED_MEMBERS) <= LISTED_MEMBERS) {
      all ??= makeAll()
      all(data)
      validate.errors = all.errors ?? first.errors ?? null
    } else {
      validate.errors = first.errors ?? null
    }
    return false
  }
  return validate
}

/**
 * Fastify validates every part of a request with one ajv whose coerceTypes turns query strings into numbers, and
 * JSON bodies too: `{"name": 1}` would pass as "1". Bodies get ajvs that coerce nothing; query, path and headers,
 * which arrive as text, keep coercion, with integers in decimal digits only. Every bad field is reported, and
 * properties a schema does not allow are refused rather than dropped.
 */
export const buildValidator: ValidatorFactory = (externalSchemas, options) => {
  const given = (options?.customOptions ?? {}) as Options
  // What the bundle's table was compiled for must be what this start compiles; otherwise every schema is compiled.
  const context = schemaContext(externalSchemas, options)
  /** An ajv's compile with these options, the ajv made on first use: with every schema in the table, none at start. */
  const compiler = (custom: Options) => {
    let compile: ReturnType<typeof buildCompiler> | undefined
    return () => compile ??= buildCompiler(externalSchemas, {
      ...options,
      mode: undefined,
      // validateSchema: false, because checking each route's schema against the JSON Schema meta-schema first has
      // every ajv compile that meta-schema, the largest of them all: a fifth of the server's start (profiled). The
      // schemas are TypeBox's, typed at compile time, and ajv's strict mode still refuses an unknown keyword.
      customOptions: { ...given, removeAdditional: false, validateSchema: false, ...custom,
        // Standalone code is written from the source ajv keeps with this.
        ...recorder.record === undefined ? {} : { code: { source: true } } },
    })
  }
  const textParts = compiler({ allErrors: true })
  const bodyFirst = compiler({ allErrors: false, coerceTypes: false })
  const bodyAll = compiler({ allErrors: true, coerceTypes: false })
  type Route = Parameters<ReturnType<typeof textParts>>[0]
  // Fastify calls whatever function it is given; the factory's type wants ajv's own.
  type Compiled = ReturnType<ReturnType<typeof textParts>>
  /** The table's function for the schema, or one compiled now (and, while the build records, what made it). */
  const first = (part: 'body' | 'text', route: Route): Validator => {
    const ajv = part === 'body' ? bodyFirst : textParts
    return restoreOrCompile('validator', context, () => `${part}\n${JSON.stringify(route.schema)}`,
      () => ajv()(route) as Validator, (validate) => ({ validate, compile: ajv() }))
  }
  return (route) => {
    if (route.httpPart === 'body') {
      return firstThenAll(first('body', route), () => bodyAll()(route) as Validator) as unknown as Compiled
    }
    return decimalIntegers(first('text', route), integerProperties(route.schema)) as unknown as Compiled
  }
}
