import fp from 'fastify-plugin'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { problemResponses } from '../../../src/problem.js'
import { GreetingQuerySchema, GreetingSchema } from './schemas.js'

/** Greeting v2: greets whoever `?name=` names. */
const greetingV2: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    schema: {
      summary: 'Greet someone by name',
      tags: ['greeting v2'],
      querystring: GreetingQuerySchema,
      response: { 200: GreetingSchema, ...problemResponses(400) },
    },
  }, async (request) => {
    const name = request.query.name?.trim()
    return { message: `Hello ${name === undefined || name === '' ? 'World' : name}` }
  })
}

export default fp(greetingV2, { name: 'mrmat-greeting-v2', fastify: '5.x', encapsulate: true })
