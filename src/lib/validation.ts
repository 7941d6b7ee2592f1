import AjvCompiler, { type Options, type ValidatorFactory } from '@fastify/ajv-compiler'

const buildCompiler = AjvCompiler()

/**
 * Fastify validates every part of a request with one ajv whose coerceTypes turns query strings into
 * numbers, and JSON bodies too: `{"name": 1}` would pass as "1". Bodies get an ajv that coerces
 * nothing; query, path and headers, which arrive as text, keep coercion. Both report every bad field
 * and refuse, rather than drop, properties a schema does not allow.
 */
export const buildValidator: ValidatorFactory = (externalSchemas, options) => {
  const given = (options?.customOptions ?? {}) as Options
  const textParts = buildCompiler(externalSchemas, {
    ...options,
    mode: undefined,
    customOptions: { ...given, removeAdditional: false, allErrors: true },
  })
  const body = buildCompiler(externalSchemas, {
    ...options,
    mode: undefined,
    customOptions: { ...given, removeAdditional: false, allErrors: true, coerceTypes: false },
  })
  return (route) => (route.httpPart === 'body' ? body(route) : textParts(route))
}
