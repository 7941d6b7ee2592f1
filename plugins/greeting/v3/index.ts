import fp from 'fastify-plugin'
import { documentTag } from '#src/lib/openapi-tags.js'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { identityOf } from '#src/plugins/auth/identity.js'
import { problemResponses } from '#src/lib/problem.js'
import { GreetingSchema } from './schemas.js'

/** Greeting v3: greets the caller named by their bearer token. Needs the mrmat-auth plugin. */
const greetingV3: FastifyPluginAsyncTypebox = async (fastify) => {
  const tags = [documentTag(fastify, {
    name: 'greeting v3',
    description: 'Greeting API, version 3: greets the caller named by their token',
  })]
  fastify.get('/', {
    schema: {
      operationId: 'getGreetingV3',
      summary: 'Greet the caller named by their bearer token',
      tags,
      security: [{ bearerAuth: [] }],
      response: { 200: GreetingSchema, ...problemResponses(401, 403, 503) },
    },
  }, async (request) => ({ message: `Hello ${identityOf(request).name}` }))
}

export default fp(greetingV3, {
  name: 'mrmat-greeting-v3',
  fastify: '5.x',
  encapsulate: true,
  // Without it the route would be open: the auth plugin adds the token check to declared routes.
  dependencies: ['mrmat-auth'],
})
