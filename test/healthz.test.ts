import { copyFileSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import t from 'tap'
import { freshSqlite } from './fixtures/databases.js'
import { build, captureLogs } from './helpers/app.js'
import { Problems } from './helpers/auth.js'
import { send } from './helpers/http.js'

t.test('healthz, liveness and readiness answer 200 with and without the trailing slash', async (t) => {
  const app = await build(t)
  const expected: Record<string, unknown> = {
    '/healthz': { status: 'OK' },
    '/healthz/liveness': { status: 'OK' },
    '/healthz/readiness': { status: 'OK', checks: [{ name: 'database', status: 'OK' }] },
  }
  for (const [path, body] of Object.entries(expected)) {
    for (const variant of [path, `${path}/`]) {
      const res = await send(app, variant)
      t.equal(res.status, 200, variant)
      t.same(res.body, body, `${variant} body`)
    }
  }
})

const breakages: [string, (file: string) => void, RegExp][] = [
  ['overwritten with garbage', (file) => { writeFileSync(file, Buffer.alloc(8192, 0x5a)) }, /not a SQLite database/],
  ['truncated to nothing', (file) => { truncateSync(file, 0) }, /not a SQLite database/],
  ['deleted', (file) => { rmSync(file) }, /missing/],
  ['replaced by another file', (file) => { copyFileSync(file, `${file}.copy`); renameSync(`${file}.copy`, file) }, /replaced/],
]

for (const [what, breakIt, reason] of breakages) {
  t.test(`readiness turns 503 when the database file is ${what}`, async (t) => {
    const database = freshSqlite(t)
    const { stream, lines } = captureLogs()
    const app = await build(t, { database, logger: { level: 'info', stream } })
    t.equal((await send(app, '/healthz/readiness')).status, 200, 'ready before')
    breakIt(database.file)
    const res = await send<Record<string, unknown>>(app, '/healthz/readiness/')
    t.equal(res.status, 503)
    t.match(res.headers['content-type'], /^application\/problem\+json/)
    const problem = res.body
    t.match(problem, {
      type: Problems.notReady,
      title: 'Not ready',
      status: 503,
      detail: 'Not ready: database (the reasons are in the server\'s log)',
    })
    t.notMatch(res.text, reason, 'the reason stays on the server: anyone may ask readiness')
    t.notMatch(res.text, database.file, 'as does the file path')
    const logged = lines.find((line) => line.msg === 'readiness check failed' && line.check === 'database')
    t.match(logged, { err: { message: reason } }, 'the log has the reason')
    t.equal((await send(app, '/healthz/liveness')).status, 200, 'still alive')
  })
}

t.test('readiness recovers when the check passes again', async (t) => {
  const app = await build(t, { database: 'none' })
  let healthy = false
  app.readiness.add('flaky', () => {
    if (!healthy) throw new Error('warming up')
  })
  const before = await app.inject('/healthz/readiness')
  t.equal(before.statusCode, 503)
  t.match(before.json(), { detail: 'Not ready: flaky (the reasons are in the server\'s log)' })
  healthy = true
  const after = await app.inject('/healthz/readiness')
  t.equal(after.statusCode, 200)
  t.same(after.json(), { status: 'OK', checks: [{ name: 'flaky', status: 'OK' }] })
})

t.test('a readiness check that hangs counts as failed after its timeout', async (t) => {
  const app = await build(t, { database: 'none' })
  app.readiness.add('stuck', () => new Promise(() => undefined))
  const started = Date.now()
  const res = await app.inject('/healthz/readiness')
  t.equal(res.statusCode, 503)
  t.match(res.json(), { detail: /^Not ready: stuck / })
  t.ok(Date.now() - started < 10_000, 'answers instead of hanging')
})

t.test('without a database readiness has nothing to check and is ready', async (t) => {
  const app = await build(t, { database: 'none' })
  const res = await app.inject('/healthz/readiness')
  t.equal(res.statusCode, 200)
  t.same(res.json(), { status: 'OK', checks: [] })
})
