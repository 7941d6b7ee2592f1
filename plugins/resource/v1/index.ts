import fp from 'fastify-plugin'
import { documentTag } from '#src/lib/openapi-tags.js'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { identityOf } from '#src/plugins/auth/identity.js'
import { HttpProblem, jsonResponse, problemResponses } from '#src/lib/problem.js'
import { absoluteUrl } from '#src/lib/urls.js'
import { DEFAULT_PAGE_SIZE, DEFAULT_READ_SCOPE, DEFAULT_WRITE_SCOPE } from './contract.js'
import type { Caller, ResourceRepository } from './repository.js'
import {
  ResourceIdParamsSchema,
  ResourceListQuerySchema,
  ResourceListSchema,
  ResourceNameSchema,
  ResourceSchema,
} from './schemas.js'

export interface ResourceV1Options {
  /** The scope reading needs. */
  readScope?: string
  /** The scope creating, renaming and deleting need. */
  writeScope?: string
}

export { DEFAULT_READ_SCOPE, DEFAULT_WRITE_SCOPE } from './contract.js'

/**
 * Resource v1: named resources that anyone with the read scope can see and only their owner, with
 * the write scope, can rename or delete. Needs the mrmat-auth and mrmat-database plugins.
 */
/**
 * A name is at most 255 characters: even escaped as \uXXXX and padded, its body fits in 8 KiB. A larger one is
 * refused (413) before it is parsed, whatever the server's own, larger, body limit.
 */
const BODY_LIMIT = 8 * 1024

const resourceV1: FastifyPluginAsyncTypebox<ResourceV1Options> = async (fastify, options) => {
  const tags = [documentTag(fastify, {
    name: 'resource v1',
    description: 'Resource API, version 1: resources everyone may read and only their owner may change',
  })]
  const read = [{ bearerAuth: [options.readScope ?? DEFAULT_READ_SCOPE] }]
  const write = [{ bearerAuth: [options.writeScope ?? DEFAULT_WRITE_SCOPE] }]
  const { database } = fastify
  // Only the dialect in use is loaded, with its drizzle schema.
  const repository: ResourceRepository = database.dialect === 'sqlite'
    ? (await import('./repository-sqlite.js')).sqliteResources(database)
    : database.dialect === 'postgres'
      ? (await import('./repository-postgres.js')).postgresResources(database)
      : (await import('./repository-mysql.js')).mysqlResources(database)
  const base = fastify.prefix
  const bodyLimit = Math.min(BODY_LIMIT, fastify.initialConfig.bodyLimit ?? BODY_LIMIT)

  function caller(request: Parameters<typeof identityOf>[0]): Caller {
    const identity = identityOf(request)
    return { subject: identity.subject, name: identity.name }
  }

  function notFound(id: number): HttpProblem {
    return new HttpProblem(404, `There is no resource ${id}`)
  }

  function refused(outcome: 'not-found' | 'forbidden', id: number): HttpProblem {
    return outcome === 'not-found' ? notFound(id) : new HttpProblem(403, `Resource ${id} belongs to someone else`)
  }

  fastify.get('/', {
    schema: {
      operationId: 'listResourcesV1',
      summary: 'List resources, a page at a time',
      description: 'All resources, ordered by id. Follow `next` (or the Link header) for the next page.',
      tags,
      security: read,
      querystring: ResourceListQuerySchema,
      response: {
        200: jsonResponse('A page of resources', ResourceListSchema, {
          Link: { type: 'string', description: 'The next page, `<url>; rel="next"`, unless this is the last' },
        }),
        ...problemResponses(400, 401, 403, 503),
      },
    },
  }, async (request, reply) => {
    const { after = 0, limit = DEFAULT_PAGE_SIZE } = request.query
    // One row more than the page says whether there is a next page, without a count.
    const rows = await repository.list(after, limit + 1)
    const page = rows.slice(0, limit)
    const last = page.at(-1)
    const next = rows.length > limit && last !== undefined
      ? absoluteUrl(request, `${base}/?after=${last.id}&limit=${limit}`)
      : null
    if (next !== null) void reply.header('link', `<${next}>; rel="next"`)
    return { resources: page, next }
  })

  fastify.get('/:id', {
    schema: {
      operationId: 'getResourceV1',
      summary: 'Get one resource',
      tags,
      security: read,
      params: ResourceIdParamsSchema,
      response: { 200: ResourceSchema, ...problemResponses(400, 401, 403, 404, 503) },
    },
  }, async (request) => {
    const resource = await repository.get(request.params.id)
    if (resource === undefined) throw notFound(request.params.id)
    return resource
  })

  fastify.post('/', {
    bodyLimit,
    schema: {
      operationId: 'createResourceV1',
      summary: 'Create a resource owned by the caller',
      tags,
      security: write,
      body: ResourceNameSchema,
      response: {
        201: jsonResponse('Created', ResourceSchema, {
          Location: { type: 'string', format: 'uri', description: 'The new resource\'s URL', 'x-required': true },
        }),
        ...problemResponses(400, 401, 403, 409, 413, 415, 503),
      },
    },
  }, async (request, reply) => {
    const created = await repository.create(caller(request), request.body.name.trim())
    return reply.code(201).header('location', absoluteUrl(request, `${base}/${created.id}`)).send(created)
  })

  fastify.put('/:id', {
    bodyLimit,
    schema: {
      operationId: 'renameResourceV1',
      summary: 'Rename a resource the caller owns',
      tags,
      security: write,
      params: ResourceIdParamsSchema,
      body: ResourceNameSchema,
      response: { 200: ResourceSchema, ...problemResponses(400, 401, 403, 404, 409, 413, 415, 503) },
    },
  }, async (request) => {
    const { id } = request.params
    const outcome = await repository.rename(caller(request), id, request.body.name.trim())
    if (typeof outcome === 'string') throw refused(outcome, id)
    return outcome
  })

  fastify.delete('/:id', {
    schema: {
      operationId: 'deleteResourceV1',
      summary: 'Delete a resource the caller owns',
      tags,
      security: write,
      params: ResourceIdParamsSchema,
      response: { 204: { type: 'null', description: 'Deleted' }, ...problemResponses(400, 401, 403, 404, 503) },
    },
  }, async (request, reply) => {
    const { id } = request.params
    const outcome = await repository.remove(caller(request), id)
    if (outcome !== 'deleted') throw refused(outcome, id)
    return reply.code(204).send()
  })
}

export default fp(resourceV1, {
  name: 'mrmat-resource-v1',
  fastify: '5.x',
  encapsulate: true,
  dependencies: ['mrmat-auth', 'mrmat-database'],
})
