import t from 'tap'
import { build } from './helpers/app.js'
import { send } from './helpers/http.js'

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
  const res = await send<Document>(await build(t), '/openapi.json')
  t.equal(res.status, 200)
  const doc = res.body ?? { openapi: '', info: { title: '', version: '' }, tags: [], paths: {} }
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
      const [status = '2xx'] = success
      const body = operation.responses[status]?.content?.['application/json']
      if (status !== '204') t.ok(body, `${where} documents its ${status} body`)
      const errors = Object.keys(operation.responses).filter((status) => Number(status) >= 400)
      t.ok(errors.includes('500'), `${where} documents 500`)
      for (const status of errors) {
        t.ok(operation.responses[status]?.content?.['application/problem+json'], `${where} ${status} is problem+json`)
      }
    }
  }
  const problemSchema = (path: string, status: string): unknown =>
    doc.paths[path]?.get?.responses[status]?.content?.['application/problem+json']?.schema
  const problemSchemas = [problemSchema('/api/greeting/v2', '400'), problemSchema('/healthz/readiness', '503')]
  t.same(problemSchemas[0], problemSchemas[1], 'one problem schema for all')
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
  const write = [{ bearerAuth: ['mrmat-ts-api-fastify-resource-write'] }]
  t.match(doc.paths['/api/resource/v1']?.post?.security, write, 'with the scope they need')
  t.match(doc, { components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } } } })
})

// Swagger UI loads the document from /docs/json.
t.test('the JSON of Swagger UI and /openapi.json are the same document', async (t) => {
  const app = await build(t)
  const [ours, ui] = await Promise.all([send(app, '/openapi.json'), send(app, '/docs/json')])
  t.equal(ui.status, 200)
  t.same(ui.body, ours.body)
})
