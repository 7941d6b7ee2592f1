import fp from 'fastify-plugin'
import { documentTag } from '#src/lib/openapi-tags.js'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { problemResponses } from '#src/lib/problem.js'
import { GreetingQuerySchema, GreetingSchema } from './schemas.js'

/** Greeting v2: greets whoever `?name=` names. */
const greetingV2: FastifyPluginAsyncTypebox = async (fastify) => {
  const tags = [documentTag(fastify, { name: 'greeting v2', description: 'Greeting API, version 2: greets by name' })]
  fastify.get('/', {
    schema: {
      operationId: 'getGreetingV2',
      summary: 'Greet someone by name',
      tags,
      security: [],
      querystring: GreetingQuerySchema,
      response: { 200: GreetingSchema, ...problemResponses(400, 503) },
    },
  }, async (request) => {
    const name = request.query.name?.trim()
    return { message: `Hello ${name === undefined || name === '' ? 'World' : name}` }
  })
}

export default fp(greetingV2, { name: 'mrmat-greeting-v2', fastify: '5.x', encapsulate: true })
