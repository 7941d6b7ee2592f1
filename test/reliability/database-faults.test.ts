import { setTimeout as sleep } from 'node:timers/promises'
import Sqlite from 'better-sqlite3'
import pg from 'pg'
import t, { type Test } from 'tap'
import {
  freshPostgres, freshSqlite, POSTGRES_HOST, POSTGRES_PORT, postgresConfig, type TestDatabase,
} from '../fixtures/databases.js'
import { startTestProvider, type TestProvider } from '../fixtures/oidc-provider.js'
import { startTcpProxy } from '../fixtures/tcp-proxy.js'
import { READ_SCOPE, WRITE_SCOPE } from '../helpers/auth.js'
import { startCli } from '../helpers/cli.js'
import { send, type Answer } from '../helpers/http.js'
import { sized } from '../helpers/reliability.js'
import { pollUntil } from '../helpers/wait.js'

// Database faults under the real server process: PostgreSQL backends terminated mid-load, PostgreSQL unreachable for
// a while (a relay in front of it goes down: the machine's PostgreSQL is shared and stays up), SQLite locked by
// another process past the busy timeout. Requests then get a 503 problem with Retry-After, never a 500; the server
// recovers by itself.

const PREFIX = '/api/resource/v1'
const DATABASE_UNAVAILABLE = /#problem-database-unavailable$/
const OUTAGE_MS = sized(3_000, 10_000)
/** The server's SQLite busy timeout (openSqlite's default), less what a timer may run early. */
const BUSY_TIMEOUT_MS = 4_990

async function writeToken(provider: TestProvider, subject: string): Promise<string> {
  return provider.sign({ sub: subject, client_id: subject, scope: `${READ_SCOPE} ${WRITE_SCOPE}` })
}

async function create(url: string, token: string, name: string): Promise<Answer<{ id?: number }>> {
  return send<{ id?: number }>(url, `${PREFIX}/`, { method: 'POST', token, json: { name }, timeout: 15_000 })
}

/** A 503 problem of the database-unavailable type with Retry-After, as every refusal here must be. */
function assertUnavailable(t: Test, answer: Answer, what: string): void {
  t.equal(answer.status, 503, `${what}: 503`)
  t.match(answer.headers['content-type'], /^application\/problem\+json/, `${what}: a problem`)
  t.match(answer.body, { type: DATABASE_UNAVAILABLE, status: 503 }, `${what}: database-unavailable`)
  t.ok(Number(answer.headers['retry-after']) > 0, `${what}: Retry-After`)
  t.notMatch(answer.text, /SELECT|INSERT|terminat|ECONN|at .*\.js/, `${what}: no internals`)
}

function databaseName(db: TestDatabase): string {
  return new URL(db.url).pathname.slice(1)
}

t.test('PostgreSQL: backends terminated mid-load, then unreachable for a while', async (t) => {
  const db = await freshPostgres(t)
  if (db === undefined) return
  const provider = await startTestProvider(t)
  const proxy = await startTcpProxy(t, { host: POSTGRES_HOST, port: POSTGRES_PORT })
  const { cli, url } = await startCli(t, ['--host', '127.0.0.1', '--port', '0', '--access-log', 'false',
    '--db', `postgres://127.0.0.1:${String(proxy.port)}/${databaseName(db)}`,
    '--issuer', provider.issuer, '--audience', provider.audience], { cwd: t.testdir() })
  const token = await writeToken(provider, 'faulty')

  t.test('pg_terminate_backend every 300 ms under four writers', async (t) => {
    const admin = new pg.Client(postgresConfig('postgres'))
    await admin.connect()
    t.teardown(async () => admin.end())
    const until = Date.now() + sized(3_000, 10_000)
    const answers: Answer<{ id?: number }>[] = []
    const writers = Array.from({ length: 4 }, async (_, w) => {
      for (let n = 0; Date.now() < until; n++) answers.push(await create(url, token, `t${String(w)}-${String(n)}`))
    })
    let terminated = 0
    while (Date.now() < until) {
      const result = await admin.query<{ ended: boolean }>(
        `SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity
         WHERE datname = $1 AND pid <> pg_backend_pid()`,
        [databaseName(db)])
      terminated += result.rows.filter((row) => row.ended).length
      await sleep(300)
    }
    await Promise.all(writers)
    const refused = answers.filter((a) => a.status !== 201)
    const statuses = new Map<number, number>()
    for (const a of answers) statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1)
    t.comment(`${String(terminated)} backends terminated; ${String(answers.length)} creates: ` +
      [...statuses].map(([status, count]) => `${String(count)}× ${String(status)}`).join(', '))
    t.ok(terminated > 0, 'backends were terminated')
    t.notOk(statuses.has(500), 'no 500')
    for (const answer of refused.slice(0, 20)) assertUnavailable(t, answer, 'a create during the terminations')
    t.equal(refused.filter((a) => a.status !== 503).length, 0, 'every refusal a 503')
    // Recovery by itself: the pool replaces the connections it lost.
    for (let i = 0; i < 5; i++) t.equal((await create(url, token, `after-${String(i)}`)).status, 201, 'a create after')
    const acked = answers.filter((a) => a.status === 201).map((a) => a.body?.id)
    const rows = await db.query<{ id: number }>('SELECT id FROM resources')
    const present = new Set(rows.map((row) => row.id))
    t.same(acked.filter((id) => id === undefined || !present.has(id)), [], 'every 201 is in the database')
    // A backend terminated after its COMMIT and before the answer reached the server leaves a row whose create was
    // answered 503: the client cannot know, and a retry gets 409. Counted, not forbidden.
    t.comment(`rows beyond the 201s: ${String(rows.length - acked.length - 5)}`)
  })

  t.test(`PostgreSQL unreachable for ${String(OUTAGE_MS)} ms: 503s, the server stays up, then serves again`,
    async (t) => {
      t.equal((await send(url, '/healthz/readiness')).status, 200, 'ready before')
      await proxy.down()
      const downAt = Date.now()
      const notReady = await pollUntil(async () => {
        const answer = await send(url, '/healthz/readiness', { timeout: 10_000 })
        return answer.status === 503 && answer
      }, OUTAGE_MS, 'readiness 503 in the outage')
      t.match(notReady.body, { detail: /database/ }, 'readiness names the database')
      const started = Date.now()
      const during = await create(url, token, 'during the outage')
      const took = Date.now() - started
      assertUnavailable(t, during, 'a create in the outage')
      t.equal((await send(url, '/api/greeting/v1')).status, 200, 'what needs no database is served')
      await sleep(Math.max(0, OUTAGE_MS - (Date.now() - downAt)))
      await proxy.up()
      const upAt = Date.now()
      await pollUntil(async () => (await send(url, '/healthz/readiness')).status === 200, 15_000, 'ready again')
      const readyAfter = Date.now() - upAt
      const after = await create(url, token, 'after the outage')
      t.comment(`outage ${String(OUTAGE_MS)} ms: a create refused in ${String(took)} ms; ready again ` +
        `${String(readyAfter)} ms after PostgreSQL came back`)
      t.equal(after.status, 201, 'a create after the outage succeeds without a restart')
      t.ok(cli.running, 'the same server process throughout')
      t.same(await db.query("SELECT id FROM resources WHERE name = 'during the outage'"), [],
        'the refused create wrote nothing')
    })
})

t.test('SQLite locked by another process past the busy timeout: 503, then served, no corruption', async (t) => {
  const db = freshSqlite(t)
  const provider = await startTestProvider(t)
  const { url } = await startCli(t, ['--host', '127.0.0.1', '--port', '0', '--access-log', 'false', '--db', db.url,
    '--issuer', provider.issuer, '--audience', provider.audience], { cwd: t.testdir() })
  const token = await writeToken(provider, 'locked-out')
  t.equal((await create(url, token, 'before')).status, 201, 'a create before the lock')

  const other = new Sqlite(db.file)
  t.teardown(() => { other.close() })
  other.exec('BEGIN EXCLUSIVE')
  const started = Date.now()
  const waiting = create(url, token, 'while locked')
  // While that create waits for the lock, the server answers everything else: the wait does not block its loop.
  await sleep(500)
  const meanwhile = Date.now()
  const read = await send(url, `${PREFIX}/`, { token })
  const open = await send(url, '/api/greeting/v1/')
  const alive = await send(url, '/healthz/liveness')
  const served = Date.now() - meanwhile
  const locked = await waiting
  const took = Date.now() - started
  other.exec('ROLLBACK')
  t.comment(`a create against the locked file answered ${String(locked.status)} after ${String(took)} ms; `
    + `meanwhile a read, greeting v1 and liveness took ${String(served)} ms`)
  assertUnavailable(t, locked, 'a create while another process holds the write lock')
  t.ok(took >= BUSY_TIMEOUT_MS, 'the create waited the busy timeout for the lock')
  t.same([read.status, open.status, alive.status], [200, 200, 200], 'reads, greetings and probes go on meanwhile')
  t.ok(served < 1_000, `without waiting for the lock (${String(served)} ms)`)
  t.equal((await create(url, token, 'after')).status, 201, 'a create once the lock is released')
  const names = (await db.query<{ name: string }>('SELECT name FROM resources ORDER BY id')).map((row) => row.name)
  t.same(names, ['before', 'after'], 'the refused create wrote nothing')
  const [check] = await db.query<{ integrity_check: string }>('PRAGMA integrity_check')
  t.equal(check?.integrity_check, 'ok', 'PRAGMA integrity_check: ok')
})
