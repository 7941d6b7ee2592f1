import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import t from 'tap'
import { DEFAULT_DATABASE_FILE, type ServerConfig } from '#src/cli/config.js'
import { parseCommandLine } from '#src/cli/command-line.js'
import { DEV_VERSION } from '#src/lib/package-info.js'
import { describeDatabase } from '#src/plugins/database/url.js'
import { build } from './helpers/app.js'
import { CLI_NAME } from './helpers/cli.js'
import { send } from './helpers/http.js'

// What a command line means, in-process: parseCommandLine(args, env) parses and checks it without running anything.
// What only the process shows (exit codes, output, signals) is in cli-process.test.ts.


/** The configuration a command line gives, or a failure naming the arguments. */
async function configOf(args: string[], env: Record<string, string> = {}): Promise<ServerConfig> {
  const invocation = await parseCommandLine(args, env)
  if (!('config' in invocation)) {
    throw new Error(`${args.join(' ')}: no configuration but ${JSON.stringify(invocation)}`)
  }
  return invocation.config
}

/** The text --help or --version prints. */
async function outputOf(args: string[]): Promise<string> {
  const invocation = await parseCommandLine(args, {})
  if (!('output' in invocation)) throw new Error(`${args.join(' ')}: no output but ${JSON.stringify(invocation)}`)
  return invocation.output
}

t.test('--help lists every option with its default and every command', async (t) => {
  const help = await outputOf(['--help'])
  const options = [
    '--config', '-d, --debug', '--host', '--port', '--instance-path', '--db', '--oidc-secrets',
    '--version', '-h, --help',
  ]
  for (const option of options) t.match(help, new RegExp(`^ +${option} `, 'm'), `lists ${option}`)
  t.match(help, /^ +--host .*\[default: "localhost"\]$/m, 'shows the default host')
  t.match(help, /^ +--port .*\[default: 8080\]$/m, 'shows the default port')
  t.match(help, /^ +--instance-path .*\[default: "var\/instance"\]$/m, 'shows the default instance path')
  for (const command of ['serve', 'migrate', 'openapi']) {
    t.match(help, new RegExp(`^ +${CLI_NAME} ${command} `, 'm'), `lists the ${command} command`)
  }
  t.match(help, /^ +mrmat-ts-api-fastify serve .*\[default\]$/m, 'serve is the default command')
})

t.test('--version is the build\'s version: from the sources, the development one', async (t) => {
  t.equal(await outputOf(['--version']), DEV_VERSION)
})

t.test('serve is the default command; migrate and openapi are commands of their own', async (t) => {
  const instance = ['--instance-path', t.testdir()]
  t.match(await parseCommandLine(instance, {}), { command: 'serve' })
  t.match(await parseCommandLine(['serve', ...instance], {}), { command: 'serve' })
  t.match(await parseCommandLine(['migrate', ...instance], {}), { command: 'migrate' })
  t.same(await parseCommandLine(['openapi'], {}), { command: 'openapi' })
})

t.test('the port comes from the flag, else MRMAT_PORT, else the config file', async (t) => {
  const dir = t.testdir({
    'config.json': JSON.stringify({ host: '127.0.0.1', port: 8001 }),
    'env-config.json': JSON.stringify({ host: '127.0.0.1', port: 8002 }),
  })
  const config = join(dir, 'config.json')
  const envConfig = join(dir, 'env-config.json')
  const instance = ['--instance-path', dir]
  const cases: { name: string, args: string[], env: Record<string, string>, port: number }[] = [
    {
      name: 'a flag beats MRMAT_PORT and the config file',
      args: ['--config', config, '--port', '8003'],
      env: { MRMAT_PORT: '8004' },
      port: 8003,
    },
    { name: 'MRMAT_PORT beats the config file', args: ['--config', config], env: { MRMAT_PORT: '8004' }, port: 8004 },
    { name: 'the --config file beats the default', args: ['--config', config], env: {}, port: 8001 },
    { name: 'the MRMAT_CONFIG file beats the default', args: [], env: { MRMAT_CONFIG: envConfig }, port: 8002 },
    {
      name: 'the --config file beats MRMAT_CONFIG',
      args: ['--config', config],
      env: { MRMAT_CONFIG: envConfig },
      port: 8001,
    },
    { name: 'nothing: the default', args: [], env: {}, port: 8080 },
  ]
  for (const { name, args, env, port } of cases) {
    const { host, port: used } = await configOf([...instance, ...args], env)
    t.equal(used, port, `${name}: ${String(port)}`)
    const fromFile = args.includes('--config') || env.MRMAT_CONFIG !== undefined
    if (fromFile) t.equal(host, '127.0.0.1', `${name}: the file's host too`)
  }
})

// Without any of them it is var/instance of the working directory: see the migrate test in cli-process.test.ts.
t.test('the instance path: the flag, else MRMAT_INSTANCE_PATH, else the config file; it is made', async (t) => {
  const at = (name: string): string => join(t.testdirName, name)
  const dir = t.testdir({ 'config.json': JSON.stringify({ 'instance-path': at('from-config') }) })
  const config = join(dir, 'config.json')
  const candidates = ['from-config', 'from-env', 'from-flag']
  const cases: { name: string, args: string[], env: Record<string, string>, folder: string }[] = [
    { name: 'the config file', args: ['--config', config], env: {}, folder: 'from-config' },
    {
      name: 'MRMAT_INSTANCE_PATH over the config file',
      args: ['--config', config],
      env: { MRMAT_INSTANCE_PATH: at('from-env') },
      folder: 'from-env',
    },
    {
      name: 'the flag over both',
      args: ['--config', config, '--instance-path', at('from-flag')],
      env: { MRMAT_INSTANCE_PATH: at('from-env') },
      folder: 'from-flag',
    },
  ]
  const made = new Set<string>()
  for (const { name, args, env, folder } of cases) {
    const { instancePath, database } = await configOf(['migrate', ...args], env)
    t.equal(instancePath, at(folder), `${name}: ${folder}`)
    t.same(database, { dialect: 'sqlite', file: join(at(folder), DEFAULT_DATABASE_FILE) },
      `${name}: the database is in it`)
    made.add(folder)
    t.same(candidates.filter((candidate) => existsSync(at(candidate))), candidates.filter((c) => made.has(c)),
      `${name}: that folder is made, and no other`)
  }
})

t.test('a bad value is a usage error (exit code 2) naming where it came from', async (t) => {
  const dir = t.testdir({
    'not-json.json': '{ port: 8080',
    'array.json': '[8080]',
    'unknown-key.json': JSON.stringify({ prot: 8080 }),
  })
  const cases: { args: string[], env?: Record<string, string>, error: RegExp }[] = [
    { args: ['--port', '70000'], error: /^invalid --port \(70000\)/ },
    { args: ['--port', 'abc'], error: /^invalid --port \(not a number\)/ },
    { args: [], env: { MRMAT_PORT: '-1' }, error: /^invalid MRMAT_PORT \("-1"\)/ },
    { args: [], env: { MRMAT_PORT: 'abc' }, error: /^invalid MRMAT_PORT \("abc"\): expected integer$/ },
    {
      args: [], env: { MRMAT_CONFIG: '/nonexistent.json' },
      error: /^cannot read the config file \/nonexistent\.json: ENOENT$/,
    },
    { args: ['--db', 'oracle://x'], error: /^invalid --db: .*'oracle:'/ },
    { args: ['--db', 'mysql://x'], error: /^invalid --db: the MySQL URI names no database/ },
    { args: ['--db', 'sqlite://host/x'], error: /^invalid --db: a sqlite URI takes no host/ },
    { args: ['--oidc-secrets', '/nonexistent'], error: /^cannot read --oidc-secrets \/nonexistent: ENOENT/ },
    { args: ['--config', '/nonexistent'], error: /^cannot read the config file \/nonexistent: ENOENT/ },
    { args: ['--config', join(dir, 'not-json.json')], error: /^the config file \S+not-json\.json is not valid JSON/ },
    { args: ['--config', join(dir, 'array.json')], error: /^the config file \S+array\.json must hold a JSON object/ },
    {
      args: ['--config', join(dir, 'unknown-key.json')],
      error: /^the config file \S+unknown-key\.json has an unknown key "prot"/,
    },
    { args: ['--bogus'], error: /^Unknown argument: bogus/ },
  ]
  for (const { args, env = {}, error } of cases) {
    const variables = Object.entries(env).map(([key, value]) => `${key}=${value}`)
    const name = [...variables, ...args].join(' ').replace(dir, '<dir>')
    // The default command, serve, with an instance path of the test's: a value that slipped through is refused there.
    await t.rejects(parseCommandLine(['--host', '127.0.0.1', '--instance-path', dir, ...args], env),
      { message: error, exitCode: 2 }, name)
  }
})

t.test('variables of other programs, MRMAT_TEST_REQUIRE_ALL say, do not trip the strict parsing', async (t) => {
  const others = { MRMAT_TEST_REQUIRE_ALL: '1', MRMAT_X: 'y' }
  const config = await configOf(['migrate', '--instance-path', t.testdir()], others)
  t.equal(config.port, 8080)
})

t.test('--db takes sqlite:<path>, a bare path and SQLAlchemy\'s sqlite:////<absolute path>', async (t) => {
  const dir = t.testdir()
  const absolute = join(dir, 'sqlalchemy', 'absolute', 'app.sqlite')
  // Relative paths are the working directory's: see the migrate --db test in cli-process.test.ts.
  const cases = [
    { db: 'sqlite:data/app.sqlite', file: resolve('data', 'app.sqlite') },
    { db: join('data', 'app.sqlite'), file: resolve('data', 'app.sqlite') },
    { db: `sqlite:///${absolute}`, file: absolute },
  ]
  for (const { db, file } of cases) {
    const { database, instancePath } = await configOf(['migrate', '--instance-path', dir, '--db', db])
    t.same(database, { dialect: 'sqlite', file }, `--db ${db}: ${file}`)
    t.equal(describeDatabase(database), `sqlite:${file}`, `--db ${db}: logged as sqlite:${file}`)
    t.not(database.dialect === 'sqlite' && database.file, join(instancePath, DEFAULT_DATABASE_FILE),
      `--db ${db}: not the database in the instance folder`)
  }
})

t.test('an option other than a switch given without its value is a usage error, not its default', async (t) => {
  const instance = ['--instance-path', t.testdir()]
  for (const flag of ['--host', '--port', '--body-limit', '--db']) {
    const refusal = { message: `Not enough arguments following: ${flag.slice(2)}` }
    await t.rejects(parseCommandLine([...instance, flag], {}), refusal, flag)
  }
})

t.test('--no-swagger-ui (or MRMAT_SWAGGER_UI=false) leaves /docs/ out and keeps /openapi.json', async (t) => {
  t.equal((await configOf([])).swaggerUi, true, 'on by default')
  t.equal((await configOf([], { MRMAT_SWAGGER_UI: 'false' })).swaggerUi, false, 'off by variable')
  const { swaggerUi } = await configOf(['--no-swagger-ui'])
  t.equal(swaggerUi, false, 'off by flag')
  const app = await build(t, { database: 'none', swaggerUi })
  t.equal((await send(app, '/docs/')).status, 404, 'no Swagger UI')
  t.equal((await send(app, '/openapi.json')).status, 200, 'the document is still served')
})
