import t from 'tap'
import { startTestProvider } from './fixtures/oidc-provider.js'
import { freshMysql, mysqlUser } from './fixtures/databases.js'
import { build, captureLogs } from './helpers/app.js'
import { Problems, READ_SCOPE, settingsFromSecrets, WRITE_SCOPE } from './helpers/auth.js'
import { send } from './helpers/http.js'

// What is MySQL's own: readiness asks the server itself, and the pool holds no more connections than it is told.

t.test('readiness turns 503 while MySQL refuses the server, and recovers when it lets it in again', async (t) => {
  const admin = await freshMysql(t)
  if (admin === undefined) return
  const { user, password, url } = await mysqlUser(t, admin)
  const { stream, lines } = captureLogs()
  const app = await build(t, { database: { ...admin, url }, logger: { level: 'info', stream } })
  t.equal((await send(app, '/healthz/readiness')).status, 200, 'ready before')

  // The account locked and its sessions ended: the pool's next connection is refused.
  await admin.exec(`ALTER USER '${user}'@'%' ACCOUNT LOCK`)
  const sessions = await admin.query<{ id: number }>('SELECT id FROM information_schema.processlist WHERE user = ?',
    [user])
  t.ok(sessions.length > 0, 'the server had a session open')
  for (const { id } of sessions) await admin.exec(`KILL ${String(id)}`)
  const down = await send<Record<string, unknown>>(app, '/healthz/readiness')
  t.equal(down.status, 503, 'not ready while the database refuses')
  t.match(down.headers['content-type'], /^application\/problem\+json/)
  t.match(down.body, { type: Problems.notReady, detail: 'Not ready: database (the reasons are in the server\'s log)' })
  t.notMatch(down.text, /locked|denied|mysql|mariadb/i, 'the reason stays on the server: anyone may ask readiness')
  const logged = lines.find((line) => line.msg === 'readiness check failed' && line.check === 'database')
  t.match(logged, { err: { message: /^the database does not answer: / } }, 'the log has the reason')
  t.notOk(JSON.stringify(lines).includes(password), 'and never the password')
  t.equal((await send(app, '/healthz/liveness')).status, 200, 'still alive')

  await admin.exec(`ALTER USER '${user}'@'%' ACCOUNT UNLOCK`)
  t.equal((await send(app, '/healthz/readiness')).status, 200, 'ready again once the database lets it in')
})

t.test('the pool holds at most --db-pool-size connections, however many requests wait', async (t) => {
  const admin = await freshMysql(t)
  if (admin === undefined) return
  const { user, url } = await mysqlUser(t, admin)
  const provider = await startTestProvider(t)
  const app = await build(t, { database: { ...admin, url }, auth: await settingsFromSecrets(t, provider), poolSize: 3 })
  const token = await provider.jwt({ scope: `${READ_SCOPE} ${WRITE_SCOPE}` })

  let most = 0
  const burst = new AbortController()
  const sampler = (async () => {
    while (!burst.signal.aborted) {
      const [row] = await admin.query<{ n: number }>(
        'SELECT count(*) AS n FROM information_schema.processlist WHERE user = ?', [user])
      most = Math.max(most, row?.n ?? 0)
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  })()
  const replies = await Promise.all(Array.from({ length: 60 }, async (_, i) =>
    send(app, '/api/resource/v1/', { method: 'POST', token, json: { name: `pooled ${String(i)}` } })))
  burst.abort()
  await sampler
  t.strictSame(replies.map((reply) => reply.status), Array<number>(60).fill(201), 'sixty creates at once: all 201')
  t.ok(most >= 1 && most <= 3, `at most 3 connections at any moment (most seen: ${String(most)})`)
  const rows = await admin.query<{ n: number }>('SELECT count(*) AS n FROM resources')
  t.equal(Number(rows[0]?.n), 60, 'sixty rows')
})

t.test('every pooled connection runs strict, utf8mb4, read committed and in UTC, whatever the server', async (t) => {
  const admin = await freshMysql(t)
  if (admin === undefined) return
  const app = await build(t, { database: admin, poolSize: 2 })
  const { database } = app
  if (database.dialect !== 'mysql') throw new Error(`a ${database.dialect} database`)
  // Both connections of the pool at once, so that a second connection is made and set up too.
  const sessions = await Promise.all([1, 2].map(async () => {
    const [rows] = await database.pool.query('SELECT SLEEP(0.2) AS slept, CONNECTION_ID() AS id, '
      + '@@SESSION.sql_mode AS mode, @@SESSION.time_zone AS zone, @@collation_connection AS collation, '
      + '@@SESSION.tx_isolation AS isolation')
    return (rows as Record<string, unknown>[])[0]
  }))
  t.equal(new Set(sessions.map((session) => session?.id)).size, 2, 'two connections')
  for (const session of sessions) {
    t.match(session?.mode, /\bSTRICT_ALL_TABLES\b/, 'strict: a value too long is an error, never truncated')
    t.match(session?.mode, /\bNO_ENGINE_SUBSTITUTION\b/, 'no table silently made without InnoDB')
    t.equal(session?.collation, 'utf8mb4_bin', 'utf8mb4, compared by code point')
    t.equal(session?.isolation, 'READ-COMMITTED', 'read committed, as PostgreSQL')
    t.equal(session?.zone, '+00:00', 'UTC')
  }
})
