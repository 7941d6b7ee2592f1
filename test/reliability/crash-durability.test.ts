import { randomInt } from 'node:crypto'
import { Agent } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { freshDatabase, type Dialect, type TestDatabase } from '../fixtures/databases.js'
import { startTestProvider } from '../fixtures/oidc-provider.js'
import { READ_SCOPE, WRITE_SCOPE } from '../helpers/auth.js'
import { startCli } from '../helpers/cli.js'
import { send } from '../helpers/http.js'
import { logLines } from '../helpers/process.js'
import { sized } from '../helpers/reliability.js'
import { pollUntil } from '../helpers/wait.js'

// Crash durability: writers create and rename resources over HTTP as fast as the server answers; the server is
// SIGKILLed at a random moment, restarted on the same instance directory and database, again and again. Every write
// that was answered 2xx must be there afterwards with the value acknowledged (or, for a resource whose later rename
// was in flight at the kill, with that rename's value), and the database must be whole.

const KILLS = sized(1, 5)
const WRITERS = 8
const PREFIX = '/api/resource/v1'

interface Tracked {
  /** The name of the last acknowledged write. */
  acked: string
  /** A rename sent after it and not answered (the kill came first): it may or may not have been committed. */
  pending: string | undefined
}

interface Round {
  acked: number
  unanswered: number
  killedAfterMs: number
}

function stopped(stop: { now: boolean }): boolean {
  return stop.now
}

/** One writer: creates, and renames one of its own resources every other request, until `stop`. */
async function writer(url: string, token: string, label: string, tracked: Map<number, Tracked>,
  stop: { now: boolean }, counts: { acked: number, unanswered: number }): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  const mine: number[] = []
  try {
    for (let n = 0; !stop.now; n++) {
      const target = n % 2 === 1 ? mine[randomInt(mine.length)] : undefined
      const name = `${label}-${String(n)}`
      const entry = target === undefined ? undefined : tracked.get(target)
      if (entry !== undefined) entry.pending = name
      try {
        const path = target === undefined ? `${PREFIX}/` : `${PREFIX}/${String(target)}`
        const answer = await send<{ id: number, name: string }>(url, path, {
          method: target === undefined ? 'POST' : 'PUT', token, json: { name }, agent, timeout: 10_000,
        })
        if (answer.status !== 200 && answer.status !== 201) {
          throw new Error(`unexpected ${String(answer.status)}: ${answer.text}`)
        }
        const id = answer.body?.id ?? 0
        tracked.set(id, { acked: name, pending: undefined })
        if (target === undefined) mine.push(id)
        counts.acked++
      } catch (error) {
        // The kill: this write's fate is unknown. Anything else is a failure of the server.
        if (!stopped(stop) && !/ECONNRESET|ECONNREFUSED|socket hang up|EPIPE/.test(String(error))) throw error
        counts.unanswered++
        return
      }
    }
  } finally {
    agent.destroy()
  }
}

async function crashRounds(t: Test, db: TestDatabase, workers: number): Promise<void> {
  const provider = await startTestProvider(t)
  const cwd = t.testdir()
  const args = ['--host', '127.0.0.1', '--port', '0', '--db', db.url, '--issuer', provider.issuer,
    '--audience', provider.audience, '--access-log', 'false', '--workers', String(workers),
    // Not shedding load: this test is about what was acknowledged, not about how much.
    '--max-event-loop-delay', '0']
  const tracked = new Map<number, Tracked>()
  const rounds: Round[] = []
  for (let round = 0; round < KILLS; round++) {
    const { cli, url } = await startCli(t, args, { cwd })
    if (workers > 1) {
      await pollUntil(() => logLines(cli.stdout).filter((l) => String(l.msg).endsWith(' is serving')).length >= workers,
        40_000, 'the workers serving')
    }
    const stop = { now: false }
    const counts = { acked: 0, unanswered: 0 }
    const writers = Array.from({ length: WRITERS }, async (_, i) => {
      const subject = `writer-${String(i)}`
      const token = await provider.sign({ sub: subject, client_id: subject, preferred_username: `Writer ${String(i)}`,
        scope: `${READ_SCOPE} ${WRITE_SCOPE}` })
      await writer(url, token, `r${String(round)}w${String(i)}`, tracked, stop, counts)
    })
    const killedAfterMs = randomInt(300, sized(1500, 3000))
    await sleep(killedAfterMs)
    cli.process.kill('SIGKILL')
    await cli.waitForExit()
    await Promise.race([Promise.all(writers), sleep(15_000)])
    stop.now = true
    await Promise.all(writers)
    rounds.push({ ...counts, killedAfterMs })
  }

  // Once more, to read back through the server as a user would, and to see that it starts on what the kills left.
  const { cli, url } = await startCli(t, args, { cwd })
  const ready = await send(url, '/healthz/readiness')
  t.equal(ready.status, 200, 'the server starts and is ready on the database the kills left')

  const rows = new Map((await db.query<{ id: number, name: string }>('SELECT id, name FROM resources'))
    .map((row) => [row.id, row.name]))
  const lost: string[] = []
  for (const [id, entry] of tracked) {
    const name = rows.get(id)
    if (name !== entry.acked && name !== entry.pending) {
      lost.push(`${String(id)}: acked ${entry.acked}, found ${String(name)}`)
    }
  }
  const acked = rounds.reduce((sum, r) => sum + r.acked, 0)
  t.comment(`${db.dialect}, --workers ${String(workers)}: ${String(KILLS)} SIGKILLs after ` +
    `${rounds.map((r) => String(r.killedAfterMs)).join(', ')} ms; ${String(acked)} acknowledged writes ` +
    `(${String(tracked.size)} resources), ${String(rounds.reduce((sum, r) => sum + r.unanswered, 0))} unanswered ` +
    `at the kills; ${String(rows.size)} rows; lost or wrong: ${String(lost.length)}`)
  t.ok(acked >= KILLS * WRITERS, 'writes were acknowledged in every round', { rounds })
  t.same(lost, [], 'every acknowledged write is there with its value')
  const orphans = await db.query(
    'SELECT r.id FROM resources r LEFT JOIN owners o ON o.id = r.owner_id WHERE o.id IS NULL')
  t.same(orphans, [], 'no resource without its owner (no half-written create)')
  const blank = await db.query("SELECT id FROM resources WHERE name IS NULL OR name = ''")
  t.same(blank, [], 'no resource without a name')
  if (db.dialect === 'sqlite') {
    const [check] = await db.query<{ integrity_check: string }>('PRAGMA integrity_check')
    t.equal(check?.integrity_check, 'ok', 'PRAGMA integrity_check: ok')
    t.same(await db.query('PRAGMA foreign_key_check'), [], 'PRAGMA foreign_key_check: nothing')
  }
  const sample = [...tracked.keys()].slice(-5)
  for (const id of sample) {
    const answer = await send<{ name: string }>(url, `${PREFIX}/${String(id)}`, {
      token: await provider.sign({ sub: 'reader', scope: READ_SCOPE }),
    })
    t.equal(answer.status, 200, `resource ${String(id)} is served after the kills`)
  }
  t.equal((await cli.stop()).code, 0, 'and stops cleanly')
}

for (const dialect of ['sqlite', 'postgres'] as const satisfies readonly Dialect[]) {
  t.test(`${dialect}: SIGKILL mid-burst, ${String(KILLS)} times, loses no acknowledged write`, async (t) => {
    const db = await freshDatabase(t, dialect)
    if (db === undefined) return
    await crashRounds(t, db, 1)
  })
}

t.test('--workers 2 on SQLite: SIGKILL of the workers\' primary mid-burst loses nothing, no orphan keeps the port',
  async (t) => {
    const db = await freshDatabase(t, 'sqlite')
    if (db === undefined) return
    const provider = await startTestProvider(t)
    const { cli, url } = await startCli(t, ['--host', '127.0.0.1', '--port', '0', '--db', db.url, '--workers', '2',
      '--issuer', provider.issuer, '--audience', provider.audience, '--access-log', 'false'], { cwd: t.testdir() })
    const workerPids = await pollUntil(() => {
      const pids = logLines(cli.stdout).filter((l) => String(l.msg).endsWith(' is serving'))
        .map((l) => Number(l.workerPid))
      return pids.length >= 2 && pids
    }, 40_000, 'two workers serving')
    const tracked = new Map<number, Tracked>()
    const stop = { now: false }
    const counts = { acked: 0, unanswered: 0 }
    const token = await provider.sign({ sub: 'w', client_id: 'w', scope: `${READ_SCOPE} ${WRITE_SCOPE}` })
    const writers = Array.from({ length: WRITERS }, async (_, i) =>
      writer(url, token, `w${String(i)}`, tracked, stop, counts))
    await sleep(randomInt(300, 1500))
    cli.process.kill('SIGKILL')
    const killedAt = Date.now()
    const gone = await pollUntil(() => workerPids.every((pid) => {
      try {
        process.kill(pid, 0)
        return false
      } catch {
        return true
      }
    }), 10_000, 'the orphaned workers gone')
    const goneAfter = Date.now() - killedAt
    stop.now = true
    await Promise.all(writers)
    const refused = await send(url, '/healthz/liveness').then((a) => String(a.status),
      (error: unknown) => (error as NodeJS.ErrnoException).code ?? '')
    const rows = new Map((await db.query<{ id: number, name: string }>('SELECT id, name FROM resources'))
      .map((row) => [row.id, row.name]))
    const lost = [...tracked].filter(([id, e]) => rows.get(id) !== e.acked && rows.get(id) !== e.pending)
    t.comment(`primary SIGKILLed: both workers gone ${String(goneAfter)} ms later; ${String(counts.acked)} ` +
      `acknowledged writes, lost or wrong: ${String(lost.length)}; the port then: ${refused}`)
    t.ok(gone, 'both workers exited with their primary')
    t.equal(refused, 'ECONNREFUSED', 'nobody holds the port')
    t.same(lost, [], 'every acknowledged write is there')
    const [check] = await db.query<{ integrity_check: string }>('PRAGMA integrity_check')
    t.equal(check?.integrity_check, 'ok', 'PRAGMA integrity_check: ok')
  })
