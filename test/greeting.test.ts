import t from 'tap'
import { build } from './helpers/app.js'
import { send } from './helpers/http.js'

t.test('greeting v1 greets the world, with and without the trailing slash', async (t) => {
  const app = await build(t)
  for (const path of ['/api/greeting/v1/', '/api/greeting/v1']) {
    const res = await send(app, path)
    t.equal(res.status, 200, `${path} answers 200 without a redirect`)
    t.match(res.headers['content-type'], /^application\/json/)
    t.same(res.body, { message: 'Hello World' }, `${path} body`)
  }
})

t.test('greeting v2 greets by name', async (t) => {
  const app = await build(t)
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
    const res = await send(app, path)
    t.equal(res.status, 200, `${path.slice(0, 40)} answers 200`)
    t.same(res.body, { message }, `${path.slice(0, 40)} body`)
  }
})

t.test('greeting v2 refuses a name longer than 255 characters', async (t) => {
  const res = await send(await build(t), `/api/greeting/v2/?name=${'a'.repeat(256)}`)
  t.equal(res.status, 400)
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  t.match(res.body, {
    status: 400,
    title: 'Validation failed',
    errors: [{ in: 'query', name: '/name', detail: /255 characters/ }],
  })
})

t.test('greeting v2 refuses the name given twice rather than guessing which', async (t) => {
  const res = await send(await build(t), '/api/greeting/v2/?name=Bob&name=Alice')
  t.equal(res.status, 400)
  t.match(res.body, { status: 400, errors: [{ in: 'query', name: '/name' }] })
})
