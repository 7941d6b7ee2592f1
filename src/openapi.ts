import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'
import { packageVersion } from './paths.js'

export interface OpenApiOptions {
  /** Serve Swagger UI at /docs/. On by default. */
  ui?: boolean
}

/**
 * The OpenAPI 3.1 document, generated from the routes' TypeBox schemas, at /openapi.json, and Swagger
 * UI with its own assets (no CDN) at /docs/. Register before the API plugins so it sees their routes.
 */
async function openapi(fastify: FastifyInstance, options: OpenApiOptions): Promise<void> {
  await fastify.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'mrmat-ts-api-fastify',
        description: 'A versioned, authenticated, database-backed REST API. Errors are RFC 9457 problem details.',
        version: packageVersion,
        license: { name: 'MIT', identifier: 'MIT' },
      },
      tags: [
        { name: 'healthz', description: 'Health probes' },
        { name: 'greeting v1', description: 'Greeting API, version 1: Hello World' },
        { name: 'greeting v2', description: 'Greeting API, version 2: greets by name' },
      ],
    },
  })

  fastify.get('/openapi.json', { schema: { hide: true } }, async () => fastify.swagger())

  if (options.ui !== false) {
    await fastify.register(swaggerUi, {
      routePrefix: '/docs',
      uiConfig: { docExpansion: 'list', deepLinking: true, tryItOutEnabled: false },
      validatorUrl: false,
      staticCSP: true,
    })
  }
}

export default fp(openapi, { name: 'mrmat-openapi', fastify: '5.x' })
