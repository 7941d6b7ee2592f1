import t from 'tap'
import { startServer } from './helpers/server.js'

interface Operation {
  security?: Record<string, string[]>[]
  summary?: string
  tags?: string[]
  responses: Record<string, { content?: Record<string, { schema: unknown }> }>
}
interface Document {
  components?: unknown
  openapi: string
  info: { title: string, version: string }
  tags: { name: string }[]
  paths: Record<string, Record<string, Operation>>
}

t.test('the OpenAPI document describes every API route from its schemas', async (t) => {
  const { url } = await startServer(t)
  const res = await fetch(`${url}/openapi.json`)
  t.equal(res.status, 200)
  const doc = await res.json() as Document
  t.equal(doc.openapi, '3.1.0')
  t.equal(doc.info.title, 'mrmat-ts-api-fastify')
  t.match(doc.info.version, /^\d+\.\d+\.\d+/)
  t.same(Object.keys(doc.paths).sort(), [
    '/api/greeting/v1',
    '/api/greeting/v2',
    '/api/greeting/v3',
    '/api/resource/v1',
    '/api/resource/v1/{id}',
    '/healthz',
    '/healthz/liveness',
    '/healthz/readiness',
  ], 'the API routes and nothing of the docs themselves')
  const declaredTags = new Set(doc.tags.map((tag) => tag.name))
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      const where = `${method.toUpperCase()} ${path}`
      t.ok(operation.summary, `${where} has a summary`)
      t.equal(operation.tags?.length, 1, `${where} has one tag`)
      t.ok(declaredTags.has(operation.tags?.[0] ?? ''), `${where} tag is declared`)
      const success = Object.keys(operation.responses).filter((status) => status.startsWith('2'))
      t.equal(success.length, 1, `${where} documents one success status`)
      if (success[0] !== '204') t.ok(operation.responses[success[0] ?? '']?.content?.['application/json'], `${where} documents its ${success[0] ?? '2xx'} body`)
      const errors = Object.keys(operation.responses).filter((status) => Number(status) >= 400)
      t.ok(errors.includes('500'), `${where} documents 500`)
      for (const status of errors) {
        t.ok(operation.responses[status]?.content?.['application/problem+json'], `${where} ${status} is problem+json`)
      }
    }
  }
  t.same(doc.paths['/api/greeting/v2']?.get?.responses['400']?.content?.['application/problem+json']?.schema, doc.paths['/healthz/readiness']?.get?.responses['503']?.content?.['application/problem+json']?.schema, 'one problem schema for all')
  t.match(doc.paths['/api/greeting/v2'], {
    get: { parameters: [{ in: 'query', name: 'name', required: false, schema: { type: 'string', maxLength: 255 } }] },
  })
  t.notMatch(JSON.stringify(doc), /def-\d/, 'no anonymous schema references')

  const protectedOps = Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods)
    .filter(([, operation]) => operation.security !== undefined)
    .map(([method, operation]) => ({ where: `${method.toUpperCase()} ${path}`, operation })))
  t.same(protectedOps.map((p) => p.where).sort(), [
    'DELETE /api/resource/v1/{id}', 'GET /api/greeting/v3', 'GET /api/resource/v1', 'GET /api/resource/v1/{id}',
    'POST /api/resource/v1', 'PUT /api/resource/v1/{id}',
  ], 'the routes that need a token say so')
  for (const { where, operation } of protectedOps) {
    for (const status of ['401', '403', '503']) t.ok(operation.responses[status], `${where} documents ${status}`)
  }
  t.match(doc.paths['/api/resource/v1']?.post?.security, [{ bearerAuth: ['mrmat-ts-api-fastify-resource-write'] }], 'with the scope they need')
  t.match(doc, { components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } } } })
})

t.test('the JSON of Swagger UI and /openapi.json are the same document', async (t) => {
  const { url } = await startServer(t)
  const [ours, ui] = await Promise.all([fetch(`${url}/openapi.json`), fetch(`${url}/docs/json`)])
  t.same(await ours.json(), await ui.json())
})
