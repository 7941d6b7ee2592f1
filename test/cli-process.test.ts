import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import Sqlite from 'better-sqlite3'
import t from 'tap'
import { parseCommandLine } from '#src/cli/command-line.js'
import { DEV_VERSION } from '#src/lib/package-info.js'
import { CLI_NAME, USAGE_HINT, cliProcess, runCli, startCli, stderrLines } from './helpers/cli.js'
import { send } from './helpers/http.js'
import { ROOT } from './helpers/build.js'
import { Child, logLines, occupiedPort } from './helpers/process.js'

// The server's CLI as a process (the compiled package): exit codes, what reaches stdout and stderr, signals, files.
// What a command line means is tested in-process, in cli.test.ts.

const DB_FILE = 'mrmat-ts-api-fastify.sqlite'
const DEFAULT_INSTANCE = join('var', 'instance')
const LOCAL = ['--host', '127.0.0.1']

const readJson = (relative: string): unknown => JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8'))
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

t.test('--help and --version print what parseCommandLine gives and exit 0', async (t) => {
  const cwd = t.testdir()
  const [help, versionRun] = await Promise.all([runCli(t, ['--help'], { cwd }), runCli(t, ['--version'], { cwd })])
  const usage = await parseCommandLine(['--help'], {})
  t.same([help.code, help.stdout, help.stderr], [0, `${'output' in usage ? usage.output : ''}\n`, ''], '--help')
  t.same([versionRun.code, versionRun.stdout, versionRun.stderr], [0, `${DEV_VERSION}\n`, ''], '--version')
})

t.test('--help speaks the user\'s language: yargs, bundled, finds its locales where it is installed', async (t) => {
  const help = await runCli(t, ['--help'], { cwd: t.testdir(), env: { LC_ALL: 'de_DE.UTF-8', LANG: 'de_DE.UTF-8' } })
  t.equal(help.code, 0)
  t.match(help.stdout, /^Optionen:$/m, 'yargs\'s own headings in German')
  t.match(help.stdout, /-h, --help +Hilfe anzeigen/, 'and its own descriptions')
  t.match(help.stdout, /--port /, 'beside this server\'s options')
})

t.test('the build stamps MRMAT_VERSION as the version, and refuses one that could not be a tag or label', async (t) => {
  const stamp = async (version: string | undefined) => {
    const out = t.testdir()
    const run = await new Child(t, process.execPath, [join(ROOT, 'scripts', 'stamp-version.mjs'), out], {
      env: version === undefined ? {} : { MRMAT_VERSION: version }, coverage: false,
    }).waitForExit()
    const file = join(out, 'version.json')
    return { code: run.code, stderr: run.stderr, stamped: existsSync(file) ? readFileSync(file, 'utf8') : undefined }
  }
  t.match(await stamp('1.2.3-rc.1'), { code: 0, stamped: '{"version":"1.2.3-rc.1"}\n' })
  t.match(await stamp(undefined), { code: 0, stamped: `{"version":"${DEV_VERSION}"}\n` }, 'unset: the development one')
  t.match(await stamp('1.2.3 $(id)'), { code: 2, stamped: undefined, stderr: /MRMAT_VERSION "1\.2\.3 \$\(id\)" is not a version/ })
})

t.test('a bad value is one line on stderr naming it, a usage hint, and exit code 2', async (t) => {
  // A value the option table refuses, and an option yargs does not know: every refusal is listed in cli.test.ts.
  const cases: { args: string[], env?: Record<string, string>, error: RegExp }[] = [
    { args: ['--port', '70000'], error: /invalid --port \(70000\)/ },
    { args: [], env: { MRMAT_PORT: 'abc' }, error: /invalid MRMAT_PORT \("abc"\): expected integer$/ },
    { args: ['--bogus'], error: /Unknown argument: bogus/ },
    // The file, the variable: each error names where the value came from.
    {
      args: ['--config', '/nonexistent/config.json'],
      error: /cannot read the config file \/nonexistent\/config\.json: ENOENT$/,
    },
  ]
  const dir = t.testdir()
  const results = await Promise.all(cases.map(async ({ args, env }) =>
    runCli(t, [...LOCAL, ...args], { cwd: dir, env })))
  cases.forEach(({ args, env = {}, error }, i) => {
    const result = results[i]
    const name = [...Object.entries(env).map(([key, value]) => `${key}=${value}`), ...args].join(' ')
    const [first = '', ...rest] = result === undefined ? [] : stderrLines(result)
    t.equal(result?.code, 2, `${name}: exit code 2`)
    t.match(first, new RegExp(`^${CLI_NAME}: .*${error.source}`), `${name}: names the problem`)
    t.same(rest, [USAGE_HINT], `${name}: then only the usage hint`)
    t.notMatch(result?.stderr, /^ +at /m, `${name}: no stack trace`)
    t.equal(result?.stdout, '', `${name}: nothing on stdout`)
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
    for (const table of ['owners', 'resources', '__drizzle_migrations']) {
      t.ok(tables.includes(table), `has the table ${table}`)
    }
    const columns = (table: string): unknown[] =>
      db.prepare(`SELECT name FROM pragma_table_info('${table}')`).pluck().all()
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

t.test('migrate --db with a relative path puts the database in the working directory', async (t) => {
  const cwd = t.testdir()
  const file = join(cwd, 'data', 'app.sqlite')
  const { code, stdout, stderr } = await runCli(t, ['migrate', '--db', 'sqlite:data/app.sqlite'], { cwd })
  t.equal(code, 0, 'exits 0')
  t.equal(stderr, '', 'nothing on stderr')
  t.ok(logLines(stdout).some((line) => line.database === `sqlite:${file}`), 'logs the database file')
  t.equal(appliedMigrations(file), migrationCount, 'the migrated file is where expected')
  t.notOk(existsSync(join(cwd, DEFAULT_INSTANCE, DB_FILE)), 'no database in the instance folder')
})

t.test('serve on a fresh instance folder', async (t) => {
  const cwd = t.testdir()
  const instancePath = join(cwd, DEFAULT_INSTANCE)
  const args = [...LOCAL, '--port', '0']

  await t.test('answers health and greeting over the real socket, logs its setup and exits 0 on SIGTERM', async (t) => {
    const { cli, url } = await startCli(t, args, { cwd })
    const health = await send(url, '/healthz/')
    t.equal(health.status, 200)
    t.same(health.body, { status: 'OK' })
    const greeting = await send(url, '/api/greeting/v1/')
    t.equal(greeting.status, 200)
    t.same(greeting.body, { message: 'Hello World' })

    const logs = logLines(cli.stdout)
    t.match(logs.find((line) => line.msg === 'opening the database'), {
      instancePath,
      database: `sqlite:${join(instancePath, DB_FILE)}`,
    }, 'names the instance path and the database')
    t.match(logs.find((line) => line.level === 40), { msg: /^no authentication is configured/ }, 'warns that nothing authenticates')

    const { code, signal, stdout, stderr } = await cli.stop()
    t.equal(code, 0, 'exits 0 on SIGTERM')
    t.equal(signal, null)
    const shutdown = logLines(stdout).find((line) => line.msg === 'shutting down')
    t.match(shutdown, { signal: 'SIGTERM' }, 'logs the shutdown')
    t.equal(stderr, '')
  })

  await t.test('starts again on the same folder', async (t) => {
    const { cli, url } = await startCli(t, args, { cwd })
    t.equal((await send(url, '/healthz/')).status, 200)
    t.equal((await cli.stop()).code, 0)
    t.equal(appliedMigrations(join(instancePath, DB_FILE)), migrationCount, 'applied nothing twice')
  })
})

t.test('openapi prints the whole OpenAPI document and exits 0 without touching the instance folder', async (t) => {
  const cwd = t.testdir()
  const { code, stdout, stderr } = await runCli(t, ['openapi'], { cwd })
  t.equal(code, 0)
  t.equal(stderr, '')
  const document = JSON.parse(stdout) as { openapi: string, paths: Record<string, Record<string, unknown>> }
  t.equal(document.openapi, '3.1.0')
  for (const path of ['/api/greeting/v1', '/api/greeting/v2', '/healthz']) {
    t.ok(path in document.paths, `documents ${path}`)
  }
  // An in-memory database mounts resource v1 too.
  const read = [{ bearerAuth: ['mrmat-ts-api-fastify-resource-read'] }]
  const write = [{ bearerAuth: ['mrmat-ts-api-fastify-resource-write'] }]
  t.match(document.paths['/api/resource/v1'], { get: { security: read }, post: { security: write } },
    'GET and POST /api/resource/v1/ with the read and write scopes')
  t.match(document.paths['/api/resource/v1/{id}'],
    { get: { security: read }, put: { security: write }, delete: { security: write } },
    'GET, PUT and DELETE /api/resource/v1/{id}')
  t.notOk(existsSync(join(cwd, 'var')), 'creates no var/instance folder')
})

t.test('a reader that stops early (| head) ends the output quietly: exit 0, nothing on stderr', async (t) => {
  for (const args of [['openapi'], ['--help']]) {
    const cli = await cliProcess(t, args, { cwd: t.testdir() })
    // As head does once it has its lines: the read end of the pipe closes before the command has written.
    cli.process.stdout?.destroy()
    const { code, stderr } = await cli.waitForExit()
    t.same([code, stderr], [0, ''], `${args.join(' ')}: exit 0, no stack trace`)
  }
})

t.test('a port already in use is one line on stderr and exit code 1', async (t) => {
  const port = await occupiedPort(t)
  const result = await runCli(t, [...LOCAL, '--port', String(port)], { cwd: t.testdir() })
  t.equal(result.code, 1, 'exit code 1')
  t.match(stderrLines(result), [new RegExp(`^${CLI_NAME}: cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`)])
  t.equal(stderrLines(result).length, 1, 'one line')
  t.notMatch(result.stderr, /^ +at /m, 'no stack trace')
})
