import SerializerSelector from '@fastify/fast-json-stringify-compiler'
import { restoreOrCompile, schemaContext } from './precompiled-schemas.js'

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
  // What the bundle's table was compiled for must be what this start compiles; otherwise every schema is compiled.
  const context = schemaContext(externalSchemas, options)
  const compiled = new WeakMap<object, SerializerSelector.Serializer>()
  return (route) => {
    const { schema } = route
    if (typeof schema !== 'object' || schema === null) return compile(route)
    let serializer = compiled.get(schema)
    if (serializer === undefined) {
      // The build writes the standalone code from what the compiler was given.
      serializer = restoreOrCompile('serializer', context, () => JSON.stringify(schema), () => compile(route),
        () => ({ externalSchemas, options, route }))
      compiled.set(schema, serializer)
    }
    return serializer
  }
}
