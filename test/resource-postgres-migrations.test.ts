import { join } from 'node:path'
import { readMigrationFiles } from 'drizzle-orm/migrator'
import pg from 'pg'
import t, { type Test } from 'tap'
import type { Database } from '#src/plugins/database/index.js'
import { migrationsFolder } from '#src/lib/package-info.js'
import {
  freshPostgres,
  openTestDatabase,
  postgresAvailable,
  postgresConfig,
  postgresUrl,
  uniqueDatabaseName,
  type TestDatabase,
} from './fixtures/databases.js'
import { CLI_NAME, cliProcess, runCli, startCli, stderrLines } from './helpers/cli.js'
import { send } from './helpers/http.js'
import { logLines, type ChildResult } from './helpers/process.js'
import { requirePart } from './helpers/require.js'

// Replicas of the real CLI against one PostgreSQL database: they migrate it together, exactly once.

const MIGRATIONS = readMigrationFiles({ migrationsFolder: migrationsFolder('postgres') })
const LOCAL = ['--host', '127.0.0.1', '--port', '0']
/** The advisory lock key src/db/postgres.ts serialises migrations with: 'mrmat-ts' as a number. */
const MIGRATION_LOCK = 0x6d726d61745f7473n.toString()

/** The migrations table holds every migration once, in order; the tables and unique indexes exist; no lock is left. */
async function assertMigrated(t: Test, db: TestDatabase): Promise<void> {
  const applied = await db.query<{ hash: string, created_at: string }>(
    'SELECT hash, created_at::text FROM drizzle.__drizzle_migrations ORDER BY id',
  )
  t.strictSame(applied.map((row) => row.hash), MIGRATIONS.map((migration) => migration.hash),
    `drizzle.__drizzle_migrations holds each of the ${String(MIGRATIONS.length)} migrations exactly once`)
  t.strictSame(applied.map((row) => row.created_at), MIGRATIONS.map((migration) => String(migration.folderMillis)),
    'recorded with their journal times')
  const tables = await db.query<{ table_name: string }>(
    'SELECT table_name FROM information_schema.tables WHERE table_schema = \'public\' ORDER BY table_name',
  )
  t.strictSame(tables.map((row) => row.table_name), ['owners', 'resources'], 'the tables are there')
  const indexes = await db.query<{ indexname: string }>(
    'SELECT indexname FROM pg_indexes WHERE schemaname = \'public\' ORDER BY indexname',
  )
  t.match(indexes.map((row) => row.indexname),
    ['owners_pkey', 'owners_subject_unique', 'resources_owner_id_name_unique', 'resources_pkey'],
    'with their unique indexes')
  const locks = await db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM pg_locks l JOIN pg_database d ON d.oid = l.database'
      + ' WHERE l.locktype = \'advisory\' AND d.datname = current_database()',
  )
  t.equal(locks[0]?.n, 0, 'no advisory lock is left held')
}

/** Resolves with the promise's outcome, or 'pending' if it has not settled within ms. */
async function settledWithin(promise: Promise<unknown>, ms: number): Promise<'resolved' | 'rejected' | 'pending'> {
  let timer: NodeJS.Timeout | undefined
  const pending = new Promise<'pending'>((resolve) => { timer = setTimeout(() => { resolve('pending') }, ms) })
  try {
    return await Promise.race([promise.then(() => 'resolved' as const, () => 'rejected' as const), pending])
  } finally {
    clearTimeout(timer)
  }
}

t.test('three replicas started at once against an empty database all come up, and it is migrated once', async (t) => {
  const db = await freshPostgres(t)
  if (db === undefined) return
  const dir = t.testdir({ a: {}, b: {}, c: {} })
  const started = await Promise.all(['a', 'b', 'c'].map(async (name) =>
    startCli(t, ['--db', db.url, ...LOCAL], { cwd: join(dir, name) })))
  const replicas = started.map(({ cli }) => cli)
  const urls = started.map(({ url }) => url)
  t.equal(new Set(urls).size, 3, 'three servers on three ports')
  for (const [i, url] of urls.entries()) {
    const readiness = await send(url, '/healthz/readiness')
    // The body names the check that failed, should one fail.
    t.equal(readiness.status, 200, `replica ${String(i)} is ready: its database answers`, { body: readiness.body })
    t.equal((await send(url, '/api/resource/v1/')).status, 401, `replica ${String(i)} serves resource v1`)
  }
  for (const [i, replica] of replicas.entries()) {
    const messages = logLines(replica.stdout).map((line) => line.msg)
    t.ok(messages.includes('database migrations are applied'), `replica ${String(i)} logged its migrations done`)
    const errors = logLines(replica.stdout).filter((line) => typeof line.level === 'number' && line.level >= 50)
    t.same(errors, [], `replica ${String(i)} logged no error`)
  }
  await assertMigrated(t, db)
  const stopped = await Promise.all(replicas.map(async (replica) => replica.stop()))
  t.strictSame(stopped.map((result) => result.code), [0, 0, 0], 'all stop cleanly on SIGTERM')
  t.strictSame(stopped.map((result) => result.stderr), ['', '', ''], 'with nothing on stderr')
})

t.test('three `migrate` commands at once exit 0 and migrate once', async (t) => {
  const db = await freshPostgres(t)
  if (db === undefined) return
  const dir = t.testdir({ a: {}, b: {}, c: {} })
  const runs = await Promise.all(['a', 'b', 'c'].map(async (name) =>
    cliProcess(t, ['migrate', '--db', db.url], { cwd: join(dir, name) })))
  const results = await Promise.all(runs.map(async (run) => run.waitForExit()))
  t.strictSame(results.map((result) => result.code), [0, 0, 0], 'all exit 0')
  t.strictSame(results.map((result) => result.stderr), ['', '', ''], 'nothing on stderr')
  await assertMigrated(t, db)
})

t.test('migrate() from three pools at the same moment, and a migration waits for the advisory lock', async (t) => {
  const db = await freshPostgres(t)
  if (db === undefined) return
  const name = new URL(db.url).pathname.slice(1)

  // Another replica holds the lock: a migration must wait for it rather than race.
  const holder = new pg.Client(postgresConfig(name))
  await holder.connect()
  const opened: Database[] = []
  // The holder goes first: its session's end lets go of the lock that a pool may still be waiting on.
  t.teardown(async () => {
    await holder.end()
    await Promise.all(opened.map(async (database) => database.close()))
  })
  await holder.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK])
  const waiting = await openTestDatabase(db, 2)
  opened.push(waiting)
  const blocked = waiting.migrate()
  t.equal(await settledWithin(blocked, 500), 'pending', 'migrate() waits while another session holds the lock')
  const schema = await db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = \'public\'',
  )
  t.equal(schema[0]?.n, 0, 'and has created nothing meanwhile')

  // Three more replicas pile up behind it; all finish once the lock is let go.
  const replicas = await Promise.all([1, 2, 3].map(async () => openTestDatabase(db, 2)))
  opened.push(...replicas)
  const all = Promise.all([blocked, ...replicas.map(async (replica) => replica.migrate())])
  t.equal(await settledWithin(all, 300), 'pending', 'all wait for the lock')
  await holder.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK])
  t.equal(await settledWithin(all, 15_000), 'resolved', 'all four migrate() calls resolve once it is released')
  await assertMigrated(t, db)

  const [again] = replicas
  await t.resolves(again?.migrate() ?? Promise.reject(new Error('no replica')),
    'migrating an up-to-date database again')
  await assertMigrated(t, db)
})

function assertOneLineFailure(t: Test, result: ChildResult, message: RegExp, what: string): void {
  t.equal(result.code, 1, `${what}: exit code 1`)
  t.equal(result.signal, null, `${what}: exits by itself`)
  const lines = stderrLines(result)
  t.equal(lines.length, 1, `${what}: one line on stderr`, { stderr: result.stderr })
  t.match(lines[0], message, `${what}: says what failed`)
  t.notMatch(`${result.stderr}${result.stdout}`, /^\s+at /m, `${what}: no stack trace`)
  t.notMatch(result.stderr, /--help/, `${what}: not a usage error`)
}

t.test('a --db that cannot be used fails the start with one clear line and exit code 1', async (t) => {
  const unreachable = 'postgres://127.0.0.1:1/x'
  const escaped = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
  const cannotConnect = (url: string): string => `${CLI_NAME}: cannot connect to PostgreSQL at ${escaped(url)}`
  const refusedAt = cannotConnect(unreachable)
  const cases: { what: string, args: string[], message: RegExp }[] = [
    {
      what: 'serve, nothing listening on the port',
      args: ['--db', unreachable, ...LOCAL],
      message: new RegExp(`^${refusedAt}: connect ECONNREFUSED 127\\.0\\.0\\.1:1$`),
    },
    {
      what: 'migrate, nothing listening on the port',
      args: ['migrate', '--db', unreachable],
      message: new RegExp(`^${refusedAt}: connect ECONNREFUSED`),
    },
  ]
  let missing: string | undefined
  if (requirePart(t, await postgresAvailable(), 'PostgreSQL on 127.0.0.1:5432 (for the missing-database case)')) {
    missing = uniqueDatabaseName()
    const url = postgresUrl(missing)
    cases.push({
      what: 'serve, a database that does not exist',
      args: ['--db', url, ...LOCAL],
      message: new RegExp(`^${cannotConnect(url)}: database "${missing}" does not exist$`),
    })
  }
  const dir = t.testdir()
  const results = await Promise.all(cases.map(async ({ args }) => runCli(t, args, { cwd: dir })))
  for (const [i, { what, message }] of cases.entries()) {
    const result = results[i]
    if (result === undefined) t.fail(`${what}: no result`)
    else assertOneLineFailure(t, result, message, what)
  }
  if (missing !== undefined) {
    const admin = new pg.Client(postgresConfig('postgres'))
    await admin.connect()
    try {
      const found = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [missing])
      t.equal(found.rowCount, 0, 'the missing database is not created')
    } finally {
      await admin.end()
    }
  }
})
