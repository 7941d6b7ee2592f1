import fp from 'fastify-plugin'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { problemResponses } from '../../../src/problem.js'
import { GreetingSchema } from './schemas.js'

/** Greeting v1: the world, greeted. */
const greetingV1: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    schema: {
      summary: 'Greet the world',
      tags: ['greeting v1'],
      response: { 200: GreetingSchema, ...problemResponses() },
    },
  }, async () => ({ message: 'Hello World' }))
}

export default fp(greetingV1, { name: 'mrmat-greeting-v1', fastify: '5.x', encapsulate: true })
