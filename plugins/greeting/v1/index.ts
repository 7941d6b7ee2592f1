import fp from 'fastify-plugin'
import { documentTag } from '#src/lib/openapi-tags.js'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { problemResponses } from '#src/lib/problem.js'
import { GreetingSchema } from './schemas.js'

/** Greeting v1: the world, greeted. */
const greetingV1: FastifyPluginAsyncTypebox = async (fastify) => {
  const tags = [documentTag(fastify, { name: 'greeting v1', description: 'Greeting API, version 1: Hello World' })]
  fastify.get('/', {
    schema: {
      operationId: 'getGreetingV1',
      summary: 'Greet the world',
      tags,
      security: [],
      response: { 200: GreetingSchema, ...problemResponses(503) },
    },
  }, async () => ({ message: 'Hello World' }))
}

export default fp(greetingV1, { name: 'mrmat-greeting-v1', fastify: '5.x', encapsulate: true })
