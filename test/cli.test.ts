import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import Sqlite from 'better-sqlite3'
import t from 'tap'
import {
  CLI_NAME,
  USAGE_HINT,
  freePorts,
  inParallel,
  logLines,
  occupiedPort,
  runCli,
  startCli,
  type CliResult,
} from './helpers/cli.js'

const DB_FILE = 'mrmat-ts-api-fastify.sqlite'
const DEFAULT_INSTANCE = join('var', 'instance')
const LOCAL = ['--host', '127.0.0.1']

const readJson = (relative: string): unknown => JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8'))
const { version } = readJson('../package.json') as { version: string }
const migrationCount = (readJson('../drizzle/sqlite/meta/_journal.json') as { entries: unknown[] }).entries.length

function withSqlite<T>(file: string, read: (db: Sqlite.Database) => T): T {
  const db = new Sqlite(file, { readonly: true, fileMustExist: true })
  try {
    return read(db)
  } finally {
    db.close()
  }
}

const appliedMigrations = (file: string): number =>
  withSqlite(file, (db) => (db.prepare('SELECT count(*) AS n FROM __drizzle_migrations').get() as { n: number }).n)

/** The status of a GET, its body read so that no connection is left hanging. */
async function statusOf(url: string): Promise<number> {
  const res = await fetch(url)
  await res.arrayBuffer()
  return res.status
}

/** The stderr lines, without the empty piece after the final newline. */
const stderrLines = (result: CliResult): string[] => result.stderr.split('\n').filter((line, i, all) => line !== '' || i < all.length - 1)

t.test('--help lists every option with its default and every command, and exits 0', async (t) => {
  const { code, stdout, stderr } = await runCli(t, ['--help'], { cwd: t.testdir() })
  t.equal(code, 0)
  t.equal(stderr, '')
  for (const option of ['--config', '-d, --debug', '--host', '--port', '--instance-path', '--db', '--oidc-secrets', '--version', '-h, --help']) {
    t.match(stdout, new RegExp(`^ +${option} `, 'm'), `lists ${option}`)
  }
  t.match(stdout, /^ +--host .*\[default: "localhost"\]$/m, 'shows the default host')
  t.match(stdout, /^ +--port .*\[default: 8080\]$/m, 'shows the default port')
  t.match(stdout, /^ +--instance-path .*\[default: "var\/instance"\]$/m, 'shows the default instance path')
  for (const command of ['serve', 'migrate', 'openapi']) {
    t.match(stdout, new RegExp(`^ +${CLI_NAME} ${command} `, 'm'), `lists the ${command} command`)
  }
  t.match(stdout, /^ +mrmat-ts-api-fastify serve .*\[default\]$/m, 'serve is the default command')
})

t.test('--version prints the version of package.json and exits 0', async (t) => {
  const { code, stdout, stderr } = await runCli(t, ['--version'], { cwd: t.testdir() })
  t.equal(code, 0)
  t.equal(stdout, `${version}\n`)
  t.equal(stderr, '')
})

t.test('the port comes from the flag, else MRMAT_PORT, else the config file', async (t) => {
  const [flagPort = 0, envPort = 0, configPort = 0, envConfigPort = 0] = await freePorts(4)
  const dir = t.testdir({
    'config.json': JSON.stringify({ host: '127.0.0.1', port: configPort }),
    'env-config.json': JSON.stringify({ host: '127.0.0.1', port: envConfigPort }),
    flag: {}, env: {}, config: {}, 'env-config': {},
  })
  const config = join(dir, 'config.json')
  const cases: { name: string, cwd: string, args: string[], env: Record<string, string>, port: number }[] = [
    { name: 'a flag beats MRMAT_PORT and the config file', cwd: 'flag', args: ['--config', config, '--port', String(flagPort)], env: { MRMAT_PORT: String(envPort) }, port: flagPort },
    { name: 'MRMAT_PORT beats the config file', cwd: 'env', args: ['--config', config], env: { MRMAT_PORT: String(envPort) }, port: envPort },
    { name: 'the --config file beats the default', cwd: 'config', args: ['--config', config], env: {}, port: configPort },
    { name: 'the MRMAT_CONFIG file beats the default', cwd: 'env-config', args: [], env: { MRMAT_CONFIG: join(dir, 'env-config.json') }, port: envConfigPort },
  ]
  // Distinct ports, so that the servers can run side by side.
  await inParallel(cases, async ({ name, cwd, args, env, port }) => {
    const { cli, url } = await startCli(t, args, { cwd: join(dir, cwd), env })
    t.equal(url, `http://127.0.0.1:${port}`, `${name}: listens on ${port}`)
    t.equal(await statusOf(`${url}/healthz/`), 200, `${name}: answers there`)
    t.equal((await cli.stop()).code, 0, `${name}: exits 0 on SIGTERM`)
  })
})

// Without any of them it is var/instance: see the migrate test.
t.test('the instance path comes from the flag, else MRMAT_INSTANCE_PATH, else the config file', async (t) => {
  const dir = t.testdir({
    'config.json': JSON.stringify({ 'instance-path': 'from-config' }),
    config: {}, env: {}, flag: {},
  })
  const config = join(dir, 'config.json')
  const candidates = [DEFAULT_INSTANCE, 'from-config', 'from-env', 'from-flag']
  const cases: { name: string, cwd: string, args: string[], env: Record<string, string>, folder: string }[] = [
    { name: 'the config file', cwd: 'config', args: ['--config', config], env: {}, folder: 'from-config' },
    { name: 'MRMAT_INSTANCE_PATH over the config file', cwd: 'env', args: ['--config', config], env: { MRMAT_INSTANCE_PATH: 'from-env' }, folder: 'from-env' },
    { name: 'the flag over both', cwd: 'flag', args: ['--config', config, '--instance-path', 'from-flag'], env: { MRMAT_INSTANCE_PATH: 'from-env' }, folder: 'from-flag' },
  ]
  await inParallel(cases, async ({ name, cwd, args, env, folder }) => {
    const at = join(dir, cwd)
    const { code, stderr } = await runCli(t, ['migrate', ...args], { cwd: at, env })
    t.equal(code, 0, `${name}: exits 0`)
    t.equal(stderr, '', `${name}: nothing on stderr`)
    t.ok(existsSync(join(at, folder, DB_FILE)), `${name}: the database is in ${folder}`)
    for (const other of candidates.filter((candidate) => candidate !== folder)) {
      t.notOk(existsSync(join(at, other)), `${name}: no ${other} folder`)
    }
  })
})

t.test('a bad value is one line on stderr naming it, a usage hint, and exit code 2', async (t) => {
  const dir = t.testdir({
    'not-json.json': '{ port: 8080',
    'array.json': '[8080]',
    'unknown-key.json': JSON.stringify({ prot: 8080 }),
  })
  // yargs re-wraps the ConfigError thrown by readConfigFile as a plain YError, so main() no longer sees a usage error.
  const cases: { args: string[], env?: Record<string, string>, error: RegExp }[] = [
    { args: ['--port', '70000'], error: /invalid --port \(70000\)/ },
    { args: ['--port', 'abc'], error: /invalid --port \(not a number\)/ },
    { args: [], env: { MRMAT_PORT: '-1' }, error: /invalid MRMAT_PORT \("-1"\)/ },
    { args: ['--db', 'mysql://x'], error: /invalid --db: .*'mysql:'/ },
    { args: ['--db', 'sqlite://host/x'], error: /invalid --db: a sqlite URI takes no host/ },
    { args: ['--oidc-secrets', '/nonexistent'], error: /cannot read --oidc-secrets \/nonexistent: ENOENT/ },
    { args: ['--config', '/nonexistent'], error: /cannot read the config file \/nonexistent: ENOENT/ },
    { args: ['--config', join(dir, 'not-json.json')], error: /the config file \S+not-json\.json is not valid JSON/ },
    { args: ['--config', join(dir, 'array.json')], error: /the config file \S+array\.json must hold a JSON object/ },
    { args: ['--config', join(dir, 'unknown-key.json')], error: /the config file \S+unknown-key\.json has an unknown key "prot"/ },
    { args: ['--bogus'], error: /Unknown argument: bogus/ },
  ]
  // The default command, serve: a value that slipped through would start a server and time out.
  const results = await inParallel(cases, async ({ args, env }) => runCli(t, [...LOCAL, ...args], { cwd: dir, env: env ?? {} }))
  cases.forEach(({ args, env, error }, i) => {
    const result = results[i] as CliResult
    const name = [...Object.entries(env ?? {}).map(([key, value]) => `${key}=${value}`), ...args].join(' ').replace(dir, '<dir>')
    const [first = '', ...rest] = stderrLines(result)
    t.equal(result.code, 2, `${name}: exit code 2`)
    t.match(first, new RegExp(`^${CLI_NAME}: .*${error.source}`), `${name}: names the problem`)
    t.same(rest, [USAGE_HINT], `${name}: then only the usage hint`)
    t.notMatch(result.stderr, /^ +at /m, `${name}: no stack trace`)
    t.equal(result.stdout, '', `${name}: nothing on stdout`)
  })
})

t.test('migrate creates the schema in var/instance of a fresh folder and applies nothing twice', async (t) => {
  const cwd = t.testdir()
  const file = join(cwd, DEFAULT_INSTANCE, DB_FILE)
  // CI sets MRMAT_TEST_REQUIRE_ALL=1: not an option of the CLI, so it must not trip strict mode.
  const first = await runCli(t, ['migrate'], { cwd, env: { MRMAT_TEST_REQUIRE_ALL: '1' } })
  t.equal(first.code, 0, 'exits 0, MRMAT_TEST_REQUIRE_ALL=1 notwithstanding')
  t.equal(first.stderr, '')
  t.ok(logLines(first.stdout).some((line) => line.msg === 'database migrations are applied'), 'logs the migrations')
  withSqlite(file, (db) => {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all()
    for (const table of ['owners', 'resources', '__drizzle_migrations']) t.ok(tables.includes(table), `has the table ${table}`)
    const columns = (table: string): unknown[] => db.prepare(`SELECT name FROM pragma_table_info('${table}')`).pluck().all()
    t.ok(columns('owners').includes('subject'), 'owners has a subject')
    const uniqueIndexes = (table: string): unknown[][] =>
      (db.prepare(`SELECT name FROM pragma_index_list('${table}') WHERE "unique" = 1`).pluck().all() as string[])
        .map((index) => db.prepare(`SELECT name FROM pragma_index_info('${index}') ORDER BY seqno`).pluck().all())
    t.same(uniqueIndexes('owners'), [['subject']], 'owners.subject is unique')
    t.same(uniqueIndexes('resources'), [['owner_id', 'name']], 'a resource name is unique per owner')
  })
  t.equal(appliedMigrations(file), migrationCount, 'records every migration once')

  const second = await runCli(t, ['migrate'], { cwd })
  t.equal(second.code, 0, 'runs again on the migrated database')
  t.equal(second.stderr, '')
  t.equal(appliedMigrations(file), migrationCount, 'applies nothing twice')
})

t.test('--db takes sqlite:<path>, a bare path and SQLAlchemy\'s sqlite:////<absolute path>', async (t) => {
  const dir = t.testdir({ prefixed: {}, bare: {}, sqlalchemy: {} })
  const absolute = join(dir, 'sqlalchemy', 'absolute', 'app.sqlite')
  const cases = [
    { cwd: 'prefixed', db: 'sqlite:data/app.sqlite', file: join(dir, 'prefixed', 'data', 'app.sqlite') },
    { cwd: 'bare', db: join('data', 'app.sqlite'), file: join(dir, 'bare', 'data', 'app.sqlite') },
    { cwd: 'sqlalchemy', db: `sqlite:///${absolute}`, file: absolute },
  ]
  await inParallel(cases, async ({ cwd, db, file }) => {
    const { code, stdout, stderr } = await runCli(t, ['migrate', '--db', db], { cwd: join(dir, cwd) })
    t.equal(code, 0, `--db ${db}: exits 0`)
    t.equal(stderr, '', `--db ${db}: nothing on stderr`)
    t.ok(logLines(stdout).some((line) => line.database === `sqlite:${file}`), `--db ${db}: logs the database file`)
    t.equal(appliedMigrations(file), migrationCount, `--db ${db}: the migrated file is where expected`)
    t.notOk(existsSync(join(dir, cwd, DEFAULT_INSTANCE, DB_FILE)), `--db ${db}: no database in the instance folder`)
  })
})

t.test('serve on a fresh instance folder', async (t) => {
  const cwd = t.testdir()
  const instancePath = join(cwd, DEFAULT_INSTANCE)
  const args = [...LOCAL, '--port', '0']

  await t.test('answers health and greeting over the real socket, logs its setup and exits 0 on SIGTERM', async (t) => {
    const { cli, url } = await startCli(t, args, { cwd })
    const health = await fetch(`${url}/healthz/`)
    t.equal(health.status, 200)
    t.same(await health.json(), { status: 'OK' })
    const greeting = await fetch(`${url}/api/greeting/v1/`)
    t.equal(greeting.status, 200)
    t.same(await greeting.json(), { message: 'Hello World' })

    const logs = logLines(cli.stdout)
    t.match(logs.find((line) => line.msg === 'opening the database'), {
      instancePath,
      database: `sqlite:${join(instancePath, DB_FILE)}`,
    }, 'names the instance path and the database')
    t.match(logs.find((line) => line.level === 40), { msg: /^no authentication is configured/ }, 'warns that nothing authenticates')

    const { code, signal, stdout, stderr } = await cli.stop()
    t.equal(code, 0, 'exits 0 on SIGTERM')
    t.equal(signal, null)
    t.ok(logLines(stdout).some((line) => line.msg === 'shutting down' && line.signal === 'SIGTERM'), 'logs the shutdown')
    t.equal(stderr, '')
  })

  await t.test('starts again on the same folder', async (t) => {
    const { cli, url } = await startCli(t, args, { cwd })
    t.equal(await statusOf(`${url}/healthz/`), 200)
    t.equal((await cli.stop()).code, 0)
    t.equal(appliedMigrations(join(instancePath, DB_FILE)), migrationCount, 'applied nothing twice')
  })
})

t.test('openapi prints the OpenAPI document and exits 0 without touching the instance folder', async (t) => {
  const cwd = t.testdir()
  const { code, stdout, stderr } = await runCli(t, ['openapi'], { cwd })
  t.equal(code, 0)
  t.equal(stderr, '')
  const document = JSON.parse(stdout) as { openapi: string, paths: Record<string, unknown> }
  t.equal(document.openapi, '3.1.0')
  for (const path of ['/api/greeting/v1', '/api/greeting/v2', '/healthz']) {
    t.ok(path in document.paths, `documents ${path}`)
  }
  t.notOk(existsSync(join(cwd, 'var')), 'creates no var/instance folder')
})

t.test('a port already in use is one line on stderr and exit code 1', async (t) => {
  const port = await occupiedPort(t)
  const result = await runCli(t, [...LOCAL, '--port', String(port)], { cwd: t.testdir() })
  t.equal(result.code, 1, 'exit code 1')
  t.match(stderrLines(result), [new RegExp(`^${CLI_NAME}: cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`)])
  t.equal(stderrLines(result).length, 1, 'one line')
  t.notMatch(result.stderr, /^ +at /m, 'no stack trace')
})
