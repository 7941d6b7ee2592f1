import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { build } from './helpers/app.js'
import { ROOT } from './helpers/build.js'
import { checkConformance } from './helpers/conformance.js'
import { folder } from './helpers/folder.js'
import { send } from './helpers/http.js'

interface Operation {
  operationId?: string
  security?: Record<string, string[]>[]
  summary?: string
  tags?: string[]
  responses: Record<string, { content?: Record<string, { schema: unknown }> }>
}
interface Document {
  components?: unknown
  openapi: string
  servers?: unknown
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
  const operations = Object.values(doc.paths).flatMap((methods) => Object.values(methods))
  t.ok(operations.every((operation) => operation.security !== undefined), 'every operation says if it needs a token')
  const operationIds = operations.map((operation) => operation.operationId)
  t.equal(new Set(operationIds).size, operations.length, 'every operation has an operationId of its own')
  t.same(doc.servers, [{ url: '/', description: 'The server that serves this document' }])
  t.match(doc.paths['/api/resource/v1'], {
    get: {
      parameters: [{ in: 'query', name: 'limit', required: false }, { in: 'query', name: 'after', required: false }],
      responses: { 200: { headers: { Link: { schema: { type: 'string' } } } } },
    },
    post: { responses: { 201: { headers: { Location: { required: true, schema: { type: 'string' } } } } } },
  }, 'limit and after are optional (they have defaults); Link and Location documented')
  t.match(doc.paths['/api/greeting/v3']?.get?.responses['401'], {
    headers: { 'WWW-Authenticate': { required: true } },
  })
  t.match(doc.paths['/api/resource/v1/{id}']?.get?.responses['503'], { headers: { 'Retry-After': {} } })

  const protectedOps = Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods)
    .filter(([, operation]) => (operation.security ?? []).length > 0)
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

t.test('the committed openapi.json is the served document (npm run openapi writes it)', async (t) => {
  const served = await send(await build(t), '/openapi.json')
  const committed = JSON.parse(readFileSync(join(ROOT, 'openapi.json'), 'utf8')) as unknown
  t.same(committed, served.body, 'openapi.json is stale: run npm run openapi and commit it')
})

t.test('the conformance check of every send() refuses what the document does not describe', async (t) => {
  const app = await build(t)
  const document = (await send<Record<string, unknown>>(app, '/openapi.json')).body ?? {}
  const holder = (doc: unknown) => ({ hasDecorator: () => true, swagger: () => doc }) as unknown as FastifyInstance
  const plain = { method: 'GET', path: '/api/resource/v1/', headers: { authorization: 'Bearer x' }, body: undefined }
  const page = {
    status: 200,
    headers: { 'content-type': 'application/json; charset=utf-8' },
    text: '{"resources":[],"next":null}',
    body: { resources: [], next: null },
  }
  await t.resolves(checkConformance(holder(document), plain, page), 'a plain list page conforms')

  // The document as it was: limit and after marked required, so a validating proxy refused a plain GET.
  const required = structuredClone(document) as { paths: Record<string, { get: { parameters: object[] } }> }
  for (const parameter of required.paths['/api/resource/v1']?.get.parameters ?? []) {
    Object.assign(parameter, { required: true })
  }
  await t.rejects(checkConformance(holder(required), plain, page), /served a request the document refuses/)

  await t.rejects(checkConformance(holder(document), plain, { ...page, status: 418 }), /a status the document does not/)
  await t.rejects(checkConformance(holder(document), plain, { ...page, body: { resources: [{ id: 'x' }] } }), /body/)
  await t.rejects(checkConformance(holder(document), plain, {
    ...page, status: 401, headers: { 'content-type': 'application/json' },
    body: { type: 'about:blank', title: 'Unauthorized', status: 401, detail: 'x' },
  }), /content-type application\/json is not among the documented application\/problem\+json.*WWW-Authenticate/)
  await t.rejects(checkConformance(holder(document), plain, {
    ...page, status: 401, headers: { 'content-type': 'application/problem+json', 'www-authenticate': 'Bearer' },
    body: { title: 'Unauthorized', status: 401 },
  }), /body/, 'a problem body is held to the problem schema')
})

t.test('the client\'s types are generated from the committed openapi.json (npm run client:types)', async (t) => {
  const generated = join(folder(t), 'openapi-types.ts')
  const cli = join(ROOT, 'node_modules', 'openapi-typescript', 'bin', 'cli.js')
  await promisify(execFile)(process.execPath, [cli, 'openapi.json', '-o', generated], { cwd: ROOT, timeout: 60_000 })
  const committed = readFileSync(join(ROOT, 'src', 'client', 'openapi-types.ts'), 'utf8')
  t.ok(readFileSync(generated, 'utf8') === committed,
    'src/client/openapi-types.ts is stale: run npm run client:types (or npm run openapi) and commit it')
})
