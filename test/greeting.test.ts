import t from 'tap'
import { startServer } from './helpers/server.js'

t.test('greeting v1 greets the world, with and without the trailing slash', async (t) => {
  const { url } = await startServer(t)
  for (const path of ['/api/greeting/v1/', '/api/greeting/v1']) {
    const res = await fetch(url + path, { redirect: 'manual' })
    t.equal(res.status, 200, `${path} answers 200 without a redirect`)
    t.match(res.headers.get('content-type'), /^application\/json/)
    t.same(await res.json(), { message: 'Hello World' }, `${path} body`)
  }
})

t.test('greeting v2 greets by name', async (t) => {
  const { url } = await startServer(t)
  const cases: [string, string][] = [
    ['/api/greeting/v2/?name=Bob', 'Hello Bob'],
    ['/api/greeting/v2?name=Bob', 'Hello Bob'],
    ['/api/greeting/v2/?name=J%C3%BCrgen%20M%C3%BCller', 'Hello Jürgen Müller'],
    ['/api/greeting/v2/', 'Hello World'],
    ['/api/greeting/v2', 'Hello World'],
    ['/api/greeting/v2/?name=', 'Hello World'],
    ['/api/greeting/v2/?name=%20%20', 'Hello World'],
    [`/api/greeting/v2/?name=${'a'.repeat(255)}`, `Hello ${'a'.repeat(255)}`],
  ]
  for (const [path, message] of cases) {
    const res = await fetch(url + path, { redirect: 'manual' })
    t.equal(res.status, 200, `${path.slice(0, 40)} answers 200`)
    t.same(await res.json(), { message }, `${path.slice(0, 40)} body`)
  }
})

t.test('greeting v2 refuses a name longer than 255 characters', async (t) => {
  const { url } = await startServer(t)
  const res = await fetch(`${url}/api/greeting/v2/?name=${'a'.repeat(256)}`)
  t.equal(res.status, 400)
  t.match(res.headers.get('content-type'), /^application\/problem\+json/)
  const problem = await res.json() as Record<string, unknown>
  t.match(problem, {
    status: 400,
    title: 'Validation failed',
    errors: [{ in: 'query', name: '/name', detail: /255 characters/ }],
  })
})

t.test('greeting v2 refuses the name given twice rather than guessing which', async (t) => {
  const { url } = await startServer(t)
  const res = await fetch(`${url}/api/greeting/v2/?name=Bob&name=Alice`)
  t.equal(res.status, 400)
  t.match(await res.json(), { status: 400, errors: [{ in: 'query', name: '/name' }] })
})
