import fp from 'fastify-plugin'
import { documentTag } from '#src/lib/openapi-tags.js'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { HttpProblem, ProblemTypes, problemResponses } from '#src/lib/problem.js'
import { HealthSchema, ReadinessSchema } from './schemas.js'

/**
 * Health probes for orchestrators: liveness says the process answers, readiness that it can serve
 * (every check registered with `fastify.readiness` passes).
 */
const healthz: FastifyPluginAsyncTypebox = async (fastify) => {
  const tags = [documentTag(fastify, { name: 'healthz', description: 'Health probes' })]
  fastify.get('/', {
    schema: {
      operationId: 'getHealth',
      summary: 'Overall health',
      tags,
      security: [],
      response: { 200: HealthSchema, ...problemResponses(503) },
    },
  }, async () => ({ status: 'OK' as const }))

  fastify.get('/liveness', {
    schema: {
      operationId: 'getLiveness',
      summary: 'Liveness probe: the process answers',
      tags,
      security: [],
      response: { 200: HealthSchema, ...problemResponses() },
    },
  }, async () => ({ status: 'OK' as const }))

  fastify.get('/readiness', {
    schema: {
      operationId: 'getReadiness',
      summary: 'Readiness probe: the server and its database can serve requests',
      tags,
      security: [],
      response: { 200: ReadinessSchema, ...problemResponses(503) },
    },
  }, async () => {
    const results = fastify.hasDecorator('readiness') ? await fastify.readiness.run() : []
    const failed = results.filter((result) => !result.ok)
    if (failed.length > 0) {
      // Only the names: a reason can hold an address or a path, and anyone may ask. The log has the reasons.
      const names = failed.map((f) => f.name).join(', ')
      throw new HttpProblem(503, `Not ready: ${names} (the reasons are in the server's log)`, {
        type: ProblemTypes.notReady,
        title: 'Not ready',
      })
    }
    return { status: 'OK' as const, checks: results.map((r) => ({ name: r.name, status: 'OK' as const })) }
  })
}

export default fp(healthz, { name: 'mrmat-healthz', fastify: '5.x', encapsulate: true })
