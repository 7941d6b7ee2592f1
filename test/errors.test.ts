import { connect } from 'node:net'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { HttpProblem, type Problem } from '#src/lib/problem.js'
import { build, captureLogs, listen } from './helpers/app.js'
import { send } from './helpers/http.js'

const PROBLEM_TYPE = /^application\/problem\+json/
const JSON_BODY = { 'content-type': 'application/json' }

/** Test-only routes that accept a JSON body and one that fails unexpectedly. */
function errorRoutes(app: FastifyInstance): void {
  app.post('/test/things', {
    schema: {
      body: {
        type: 'object',
        required: ['name'],
        additionalProperties: false,
        properties: { name: { type: 'string', minLength: 1 }, size: { type: 'integer' } },
      },
    },
  }, async (request) => request.body)
  app.get('/test/boom', async () => {
    throw new Error('secret internals: password=hunter2 at /srv/app/db.ts')
  })
}

t.test('an unknown route is a 404 problem', async (t) => {
  const res = await send(await build(t), '/no/such/route?token=abc')
  t.equal(res.status, 404)
  t.match(res.headers['content-type'], PROBLEM_TYPE)
  t.same(res.body, {
    type: 'about:blank',
    title: 'Not Found',
    status: 404,
    detail: 'There is no route GET /no/such/route',
    instance: '/no/such/route',
    requestId: res.headers['x-request-id'],
  }, 'the problem names the route but not the query string')
})

t.test('a known route with the wrong method is a 405 problem with Allow', async (t) => {
  const app = await build(t)
  const wrong = [['POST', '/api/greeting/v1/'], ['DELETE', '/api/greeting/v2'], ['PUT', '/healthz/readiness']] as const
  for (const [method, path] of wrong) {
    const res = await send(app, path, { method })
    t.equal(res.status, 405, `${method} ${path}`)
    t.equal(res.headers.allow, 'GET, HEAD', `${method} ${path} Allow`)
    t.match(res.headers['content-type'], PROBLEM_TYPE)
    t.match(res.body, {
      type: 'about:blank',
      title: 'Method Not Allowed',
      status: 405,
      detail: `${method} is not allowed here; use GET, HEAD`,
    })
  }
})

t.test('validation errors name every offending field', async (t) => {
  const app = await build(t, { routes: errorRoutes })
  const res = await send<Problem>(app, '/test/things', { method: 'POST', json: { size: 'big', colour: 'red' } })
  t.equal(res.status, 400)
  t.match(res.headers['content-type'], PROBLEM_TYPE)
  t.equal(res.body?.type, 'https://github.com/MrMatAP/mrmat-ts-api-fastify/blob/main/README.md#problem-validation-failed')
  t.equal(res.body?.title, 'Validation failed')
  t.match(res.body?.detail, /^The body field \/\w+ .+ \(and 2 more\)$/)
  t.same(
    res.body?.errors?.map((e) => `${e.in} ${e.name}`).sort(),
    ['body /colour', 'body /name', 'body /size'],
    'the missing, the extra and the mistyped field',
  )
})

t.test('a validation failure is a problem too: Fastify\'s message and findings, no stack', async (t) => {
  const seen: Error[] = []
  const app = await build(t, {
    routes: (app) => app.addHook('onError', async (_request, _reply, error) => { seen.push(error) }),
  })
  const res = await send<Problem>(app, `/api/greeting/v2/?name=${'a'.repeat(256)}`)
  t.same([res.status, res.body?.detail], [400, 'The query field /name must NOT have more than 255 characters'])
  const [error] = seen as (Error & { validation?: unknown[], validationContext?: string })[]
  t.equal(error?.message, 'querystring/name must NOT have more than 255 characters', 'the message Fastify would write')
  t.same([error?.validationContext, error?.validation?.length], ['querystring', 1], 'with Fastify\'s findings')
  t.equal(error?.stack, `HttpProblem: ${error?.message ?? ''}`, 'and no frames: they were most of what a 400 cost')
})

t.test('malformed and empty JSON bodies are 400 problems', async (t) => {
  const app = await build(t, { routes: errorRoutes })
  for (const body of ['{"name": ', '']) {
    const res = await send(app, '/test/things', { method: 'POST', headers: JSON_BODY, body })
    t.equal(res.status, 400, `body ${JSON.stringify(body)}`)
    t.match(res.headers['content-type'], PROBLEM_TYPE)
    t.match(res.body, { type: 'about:blank', title: 'Bad Request', status: 400, detail: /json/i })
  }
})

t.test('a body over the limit is a 413 problem', async (t) => {
  const app = await build(t, { routes: errorRoutes })
  const res = await send(app, '/test/things', { method: 'POST', json: { name: 'x'.repeat(1024 * 1024) } })
  t.equal(res.status, 413)
  t.match(res.headers['content-type'], PROBLEM_TYPE)
  t.match(res.body, { type: 'about:blank', title: 'Payload Too Large', status: 413, detail: /too large/ })
})

t.test('a body of another media type is a 415 problem', async (t) => {
  const app = await build(t, { routes: errorRoutes })
  for (const type of ['text/plain', 'application/xml', 'application/x-www-form-urlencoded']) {
    const res = await send(app, '/test/things', { method: 'POST', headers: { 'content-type': type }, body: 'name=x' })
    t.equal(res.status, 415, type)
    t.match(res.headers['content-type'], PROBLEM_TYPE)
    t.match(res.body, { type: 'about:blank', title: 'Unsupported Media Type', status: 415 })
  }
})

t.test('an unexpected error is a 500 problem without internals, logged with its stack', async (t) => {
  const { stream, lines } = captureLogs()
  const app = await build(t, { logger: { level: 'info', stream }, routes: errorRoutes })
  const res = await send(app, '/test/boom', { headers: { 'x-request-id': 'trace-500' } })
  t.equal(res.status, 500)
  t.match(res.headers['content-type'], PROBLEM_TYPE)
  t.equal(res.headers['x-request-id'], 'trace-500')
  t.notMatch(res.text, /hunter2|secret|db\.ts|\bat\b.*:\d+/, 'no message, path or stack reaches the client')
  t.same(res.body, {
    type: 'about:blank',
    title: 'Internal Server Error',
    status: 500,
    detail: 'An unexpected error occurred. Quote the request id when reporting it.',
    instance: '/test/boom',
    requestId: 'trace-500',
  })
  const logged = lines.find((line) => line.reqId === 'trace-500' && line.level === 50)
  t.ok(logged, 'the failure is logged at error level with the request id')
  t.match((logged?.err as { stack?: string } | undefined)?.stack, /secret internals[\s\S]*errors\.test\.ts/, 'with the stack')
})

t.test('a problem is an answer, not a fault: it carries no stack, and other errors keep theirs', async (t) => {
  const limit = Error.stackTraceLimit
  const problem = new HttpProblem(403, 'not yours')
  t.equal(problem.stack, 'HttpProblem: not yours', 'no frames: capturing them was most of a refusal\'s cost')
  t.equal(Error.stackTraceLimit, limit, 'the stack trace limit is as it was')
  t.match(new Error('a fault').stack, /\n\s+at .*errors\.test\.ts/, 'an error made after it has its frames')
})

t.test('a malformed URL is a 400 problem', async (t) => {
  const res = await send(await build(t), '/api/greeting/v2/%E0%A4%A')
  t.equal(res.status, 400)
  t.match(res.headers['content-type'], PROBLEM_TYPE)
  t.ok(res.headers['x-request-id'])
  t.match(res.body, { type: 'about:blank', title: 'Bad Request', status: 400 })
})

t.test('x-request-id is echoed when sane and replaced otherwise', async (t) => {
  const app = await build(t)
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
  const given = await send(app, '/api/greeting/v1/', { headers: { 'x-request-id': 'edge-42.a_b:c' } })
  t.equal(given.headers['x-request-id'], 'edge-42.a_b:c')
  const none = await send(app, '/api/greeting/v1/')
  t.match(none.headers['x-request-id'], uuid)
  for (const bad of ['a'.repeat(129), '<script>', 'two words', '']) {
    const res = await send<Problem>(app, '/no/such', { headers: { 'x-request-id': bad } })
    const id = res.headers['x-request-id']
    t.match(id, uuid, `${JSON.stringify(bad.slice(0, 10))} is replaced`)
    t.equal(res.body?.requestId, id, 'the problem carries the same id')
  }
  const ids = await Promise.all([1, 2, 3].map(async () => (await send(app, '/healthz/')).headers['x-request-id']))
  t.equal(new Set(ids).size, 3, 'generated ids differ')
})

t.test('HEAD of an unknown route is a bodiless 404', async (t) => {
  const res = await send(await build(t), '/no/such', { method: 'HEAD' })
  t.equal(res.status, 404)
  t.equal(res.text, '')
})

/** Sends raw bytes and returns everything the server answers before closing. */
async function rawExchange(url: string, bytes: string): Promise<string> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const socket = connect(Number(port), hostname, () => socket.end(bytes))
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('close', () => { resolve(Buffer.concat(chunks).toString()) })
  })
}

// The HTTP parser is the socket's: these need a real one.
t.test('requests the HTTP parser rejects get problem details, not a dropped socket', async (t) => {
  const { url } = await listen(t)
  const garbled = await rawExchange(url, 'GET /healthz/ HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n')
  t.match(garbled, /^HTTP\/1\.1 400 Bad Request\r\n/)
  t.match(garbled, /\r\nContent-Type: application\/problem\+json\r\n/)
  t.same(JSON.parse(garbled.slice(garbled.indexOf('\r\n\r\n') + 4)), {
    type: 'about:blank', title: 'Bad Request', status: 400, detail: 'The request could not be parsed as HTTP',
  })
  const huge = await rawExchange(url, `GET /healthz/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`)
  t.match(huge, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/)
  t.match(huge, /"status":431/)
})
