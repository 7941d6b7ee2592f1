import SerializerSelector from '@fastify/fast-json-stringify-compiler'
import { precompiled, recorder, restore, schemaContext } from './precompiled-schemas.js'

const buildDefault = SerializerSelector()

/**
 * For Fastify's schemaController.compilersFactory.buildSerializer: fast-json-stringify's compiler, run once a schema
 * object. Every route answers its problems with the one ProblemSchema at several statuses, and Fastify compiles a
 * serializer for each route, status and content type: most of the serializers a start compiled were the same code.
 * What fast-json-stringify writes depends on the schema and the shared schemas only, which one compiler has fixed.
 */
export const buildSerializer: SerializerSelector.SerializerFactory = (externalSchemas, options) => {
  // Made on the first compile: the command line's bundle loads the compiler only then (scripts/bundle.mjs).
  let compiler: ReturnType<typeof buildDefault> | undefined
  const compile: ReturnType<typeof buildDefault> = (route) => {
    compiler ??= buildDefault(externalSchemas, options)
    return compiler(route)
  }
  const record = recorder.record
  // What the bundle's table was compiled for must be what this start compiles; otherwise every schema is compiled.
  const context = precompiled.table === undefined && record === undefined ? undefined
    : schemaContext(externalSchemas, options)
  const compiled = new WeakMap<object, SerializerSelector.Serializer>()
  return (route) => {
    const { schema } = route
    if (typeof schema !== 'object' || schema === null) return compile(route)
    let serializer = compiled.get(schema)
    if (serializer === undefined) {
      const key = context === undefined ? '' : JSON.stringify(schema)
      serializer = context === undefined ? undefined
        : restore(context, key) as SerializerSelector.Serializer | undefined
      if (serializer === undefined) {
        serializer = compile(route)
        // The build writes the standalone code from what the compiler was given.
        if (record !== undefined && context !== undefined) {
          record({ kind: 'serializer', context, key }, { externalSchemas, options, route })
        }
      }
      compiled.set(schema, serializer)
    }
    return serializer
  }
}
