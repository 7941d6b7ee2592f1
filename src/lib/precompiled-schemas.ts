// Validators and serializers compiled when the command line was built, so that its start does not compile them: ajv
// and fast-json-stringify writing and compiling a function a schema were about a twentieth of every start.
//
// In the library this module holds nothing, and every schema is compiled as Fastify would. The command line's bundle
// (scripts/bundle.mjs) replaces it with a table that scripts/precompile-schemas.mjs wrote as the build ran: each
// schema the server compiles at start, as the code ajv's and fast-json-stringify's standalone modes write for it.

/** What a compiled function was made from: its compiler's shared schemas and options, and the schema, as JSON. */
export interface SchemaCompile {
  kind: 'validator' | 'serializer'
  /** The compiler's shared schemas and options: a table is for one such set only. */
  context: string
  /** The part (validators: 'body' or 'text') and the schema. */
  key: string
}

/** By context, then key: a function that makes the compiled function. */
export type PrecompiledTable = ReadonlyMap<string, ReadonlyMap<string, () => unknown>>

/** The table: none outside the command line's bundle, whose build writes it into the initialiser here. */
export const precompiled: { table?: PrecompiledTable } = {}

/**
 * Set by the build only, to learn what a start compiles; with it set, validators are compiled with ajv's source
 * kept (`code.source`), which standalone code needs. `made` is what the code is written from: a validator and the
 * ajv compile that made it, or a serializer's compiler inputs (its shared schemas, options and route).
 */
export const recorder: { record?: (compile: SchemaCompile, made: unknown) => void } = {}

/**
 * The compiler's context as a table's key (its shared schemas and options, as JSON), or undefined when there is no
 * table to read and no build recording: then every schema is simply compiled.
 */
export function schemaContext(externalSchemas: unknown, options: unknown): string | undefined {
  if (precompiled.table === undefined && recorder.record === undefined) return undefined
  return JSON.stringify([externalSchemas, options])
}

/**
 * The table's function for a schema, or the one `compile` makes now; while the build records, a compile is recorded
 * with what `made` says it was made from. `key` is called only where a table or a recording needs it.
 */
export function restoreOrCompile<T>(kind: SchemaCompile['kind'], context: string | undefined, key: () => string,
  compile: () => T, made: (compiled: T) => unknown): T {
  if (context === undefined) return compile()
  const found = key()
  const restored = precompiled.table?.get(context)?.get(found)?.() as T | undefined
  if (restored !== undefined) return restored
  const compiled = compile()
  recorder.record?.({ kind, context, key: found }, made(compiled))
  return compiled
}
