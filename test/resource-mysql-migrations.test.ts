import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { readMigrationFiles } from 'drizzle-orm/migrator'
import mysql from 'mysql2/promise'
import t, { type Test } from 'tap'
import type { Database } from '#src/plugins/database/index.js'
import { migrationsFolder } from '#src/lib/package-info.js'
import {
  freshMysql,
  mysqlUser,
  mysqlAvailable,
  mysqlConfig,
  mysqlUrl,
  openTestDatabase,
  uniqueDatabaseName,
  type TestDatabase,
} from './fixtures/databases.js'
import { CLI_NAME, cliProcess, runCli, startCli, stderrLines } from './helpers/cli.js'
import { send } from './helpers/http.js'
import { logLines, type ChildResult } from './helpers/process.js'
import { requirePart } from './helpers/require.js'

// Replicas of the real CLI against one MySQL (MariaDB) database: they migrate it together, exactly once.

const MIGRATIONS = readMigrationFiles({ migrationsFolder: migrationsFolder('mysql') })
const LOCAL = ['--host', '127.0.0.1', '--port', '0']
/** The GET_LOCK name src/plugins/database/mysql.ts serialises migrations with, in the database connected to. */
const MIGRATION_LOCK = 'CONCAT(\'mrmat-ts-api-fastify:\', SHA1(DATABASE()))'

function nameOf(db: TestDatabase): string {
  return new URL(db.url).pathname.slice(1)
}

/** The migrations table holds every migration once, in order; the tables and unique indexes exist; no lock is held. */
async function assertMigrated(t: Test, db: TestDatabase): Promise<void> {
  const applied = await db.query<{ hash: string, created_at: string }>(
    'SELECT hash, CAST(created_at AS CHAR) AS created_at FROM __drizzle_migrations ORDER BY id',
  )
  t.strictSame(applied.map((row) => row.hash), MIGRATIONS.map((migration) => migration.hash),
    `__drizzle_migrations holds each of the ${String(MIGRATIONS.length)} migrations exactly once`)
  t.strictSame(applied.map((row) => row.created_at), MIGRATIONS.map((migration) => String(migration.folderMillis)),
    'recorded with their journal times')
  const tables = await db.query<{ name: string }>(
    'SELECT table_name AS name FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY table_name',
  )
  // Sorted here: information_schema orders by its own case-insensitive collation, underscores after letters.
  t.strictSame(tables.map((row) => row.name).sort(), ['__drizzle_migrations', 'owners', 'resources'],
    'the tables are there')
  const unique = await db.query<{ name: string }>(
    'SELECT DISTINCT index_name AS name FROM information_schema.statistics'
      + ' WHERE table_schema = DATABASE() AND non_unique = 0 ORDER BY index_name',
  )
  t.strictSame(unique.map((row) => row.name).sort(),
    ['PRIMARY', 'owners_subject_unique', 'resources_owner_id_name_unique'], 'with their unique indexes')
  const lock = await db.query<{ holder: number | null }>(`SELECT IS_USED_LOCK(${MIGRATION_LOCK}) AS holder`)
  t.equal(lock[0]?.holder, null, 'no migration lock is left held')
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
  const db = await freshMysql(t)
  if (db === undefined) return
  const { url, password } = await mysqlUser(t, db)
  const dir = t.testdir({ a: {}, b: {}, c: {} })
  const started = await Promise.all(['a', 'b', 'c'].map(async (name) =>
    startCli(t, ['--db', url, ...LOCAL], { cwd: join(dir, name) })))
  const replicas = started.map(({ cli }) => cli)
  const urls = started.map((replica) => replica.url)
  t.equal(new Set(urls).size, 3, 'three servers on three ports')
  for (const [i, at] of urls.entries()) {
    t.equal((await send(at, '/healthz/readiness')).status, 200, `replica ${String(i)} is ready: its database answers`)
    t.equal((await send(at, '/api/resource/v1/')).status, 401, `replica ${String(i)} serves resource v1`)
  }
  for (const [i, replica] of replicas.entries()) {
    const lines = logLines(replica.stdout)
    t.ok(lines.some((line) => line.msg === 'database migrations are applied'), `replica ${String(i)} migrated`)
    const opening = lines.find((line) => line.msg === 'opening the database')
    t.match(opening?.database, /^mariadb:\/\/mrmat_[0-9a-f]+:\*\*\*@127\.0\.0\.1:3306\/mrmat_test_/,
      `replica ${String(i)} logs the database with the password masked`)
    t.notOk(replica.stdout.includes(password) || replica.stderr.includes(password),
      `replica ${String(i)} never writes the password`)
    const errors = lines.filter((line) => typeof line.level === 'number' && line.level >= 50)
    t.same(errors, [], `replica ${String(i)} logged no error`)
  }
  await assertMigrated(t, db)
  const stopped = await Promise.all(replicas.map(async (replica) => replica.stop()))
  t.strictSame(stopped.map((result) => result.code), [0, 0, 0], 'all stop cleanly on SIGTERM')
  t.strictSame(stopped.map((result) => result.stderr), ['', '', ''], 'with nothing on stderr')
})

t.test('three `migrate` commands at once exit 0 and migrate once', async (t) => {
  const db = await freshMysql(t)
  if (db === undefined) return
  const dir = t.testdir({ a: {}, b: {}, c: {} })
  const runs = await Promise.all(['a', 'b', 'c'].map(async (name) =>
    cliProcess(t, ['migrate', '--db', db.url], { cwd: join(dir, name) })))
  const results = await Promise.all(runs.map(async (run) => run.waitForExit()))
  t.strictSame(results.map((result) => result.code), [0, 0, 0], 'all exit 0')
  t.strictSame(results.map((result) => result.stderr), ['', '', ''], 'nothing on stderr')
  await assertMigrated(t, db)
})

t.test('migrate() from three pools at the same moment, and a migration waits for the lock', async (t) => {
  const db = await freshMysql(t)
  if (db === undefined) return
  // Another replica holds the lock: a migration must wait for it rather than race.
  const holder = await mysql.createConnection(mysqlConfig(nameOf(db)))
  const opened: Database[] = []
  // The holder goes first: its session's end lets go of the lock that a pool may still be waiting on.
  t.teardown(async () => {
    await holder.end()
    await Promise.all(opened.map(async (database) => database.close()))
  })
  await holder.query(`SELECT GET_LOCK(${MIGRATION_LOCK}, 0)`)
  const waiting = await openTestDatabase(db, 2)
  opened.push(waiting)
  const blocked = waiting.migrate()
  t.equal(await settledWithin(blocked, 500), 'pending', 'migrate() waits while another session holds the lock')
  const tables = await db.query<{ n: number }>(
    'SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = DATABASE()',
  )
  t.equal(Number(tables[0]?.n), 0, 'and has created nothing meanwhile')

  // Three more replicas pile up behind it; all finish once the lock is let go.
  const replicas = await Promise.all([1, 2, 3].map(async () => openTestDatabase(db, 2)))
  opened.push(...replicas)
  const all = Promise.all([blocked, ...replicas.map(async (replica) => replica.migrate())])
  t.equal(await settledWithin(all, 300), 'pending', 'all wait for the lock')
  await holder.query(`SELECT RELEASE_LOCK(${MIGRATION_LOCK})`)
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
  t.notMatch(`${result.stderr}${result.stdout}`, /wrong-secret/, `${what}: never the password`)
}

t.test('a --db that cannot be used fails the start with one clear line and exit code 1', async (t) => {
  const unreachable = 'mysql://127.0.0.1:1/x'
  const escaped = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
  const cannotConnect = (url: string): string => `${CLI_NAME}: cannot connect to MySQL at ${escaped(url)}`
  const cases: { what: string, args: string[], message: RegExp }[] = [
    {
      what: 'serve, nothing listening on the port',
      args: ['--db', unreachable, ...LOCAL],
      message: new RegExp(`^${cannotConnect(unreachable)}: connect ECONNREFUSED 127\\.0\\.0\\.1:1$`),
    },
    {
      what: 'migrate, nothing listening on the port',
      args: ['migrate', '--db', unreachable],
      message: new RegExp(`^${cannotConnect(unreachable)}: connect ECONNREFUSED`),
    },
  ]
  if (requirePart(t, await mysqlAvailable(), 'MySQL on 127.0.0.1:3306 (for the missing-database cases)')) {
    const missing = uniqueDatabaseName()
    const url = mysqlUrl(missing)
    cases.push({
      what: 'serve, a database that does not exist',
      args: ['--db', url, ...LOCAL],
      message: new RegExp(`^${cannotConnect(url)}: Unknown database '${missing}'$`),
    })
    const wrong = `mysql://nobody_${randomBytes(4).toString('hex')}:wrong-secret@127.0.0.1:3306/${missing}`
    const shown = wrong.replace('wrong-secret', '***')
    cases.push({
      what: 'serve, a user the server refuses',
      args: ['--db', wrong, ...LOCAL],
      message: new RegExp(`^${cannotConnect(shown)}: Access denied for user`),
    })
  }
  const dir = t.testdir()
  const results = await Promise.all(cases.map(async ({ args }) => runCli(t, args, { cwd: dir })))
  for (const [i, { what, message }] of cases.entries()) {
    const result = results[i]
    if (result === undefined) t.fail(`${what}: no result`)
    else assertOneLineFailure(t, result, message, what)
  }
})
