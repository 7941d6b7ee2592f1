import {
  copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Sqlite from 'better-sqlite3'
import t, { type Test } from 'tap'
import { startNodeFlags } from '../scripts/start-options.mjs'
import { startTestProvider } from './fixtures/oidc-provider.js'
import { startOtlpReceiver } from './fixtures/otlp-receiver.js'
import { signInDevice } from './helpers/device-sign-in.js'
import { valueOf } from './helpers/metrics.js'
import { send } from './helpers/http.js'
import { Child, type ChildResult } from './helpers/process.js'
import { pollUntil } from './helpers/wait.js'

/*
 * The package as it is published and as the Dockerfile installs it, without a Docker engine: npm pack
 * (which runs prepack, a clean build), then the tarball installed with production dependencies only
 * into an empty folder outside the repository, so that nothing resolves from the project's own
 * node_modules. Packed and installed once; the subtests share it.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const NAME = 'mrmat-ts-api-fastify'
const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string
  exports: Record<string, string | { types: string, import: string }>
}
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
const NATIVE_ADDON = join('better-sqlite3', 'build', 'Release', 'better_sqlite3.node')
// Not @types/node: mysql2 names it as a peer dependency, not an optional one, so npm installs it with mysql2.
// oidc-provider is an optional dependency (the dev command's identity provider), installed unless --omit=optional;
// @types/pg and @types/better-sqlite3 are dependencies, since the published declarations name those types.
const DEV_ONLY = [
  'tap', 'typescript', 'drizzle-kit', 'tsx', 'eslint', 'c8', 'playwright-core', 'autocannon', '@types/yargs',
]
const RELEASE_VERSION = '3.2.1-pack.1'
// The pack builds the package from scratch (tsc, the bundle); with two other test files running on a 2-core machine
// it once took longer than 120 s in CI.
const PACK_TIMEOUT_MS = 240_000
const INSTALL_TIMEOUT_MS = 120_000
const STEP_TIMEOUT_MS = 60_000

/**
 * A program run to its end, its output returned; a failure or a timeout rejects with all it printed. Its environment
 * has none of tap's loader or coverage, npm's lifecycle or the MRMAT_* settings (see childEnv).
 */
async function run(file: string, args: string[], cwd: string, timeout: number,
  env: Record<string, string> = {}): Promise<ChildResult> {
  const result = await new Child(t, file, args, { cwd, coverage: false, env }).waitForExit(timeout)
  if (result.code !== 0) {
    throw new Error(`${[file, ...args].join(' ')} in ${cwd} exited ${String(result.code ?? result.signal)}\n`
      + `--- stdout\n${result.stdout}--- stderr\n${result.stderr}`)
  }
  return result
}

interface Installed {
  /** Holds the tarball (pack/), the host project with its node_modules (host/) and instance data. */
  work: string
  tarball: string
  host: string
  /** node_modules/<name> in the host. */
  installed: string
}

async function packAndInstall(): Promise<Installed> {
  const work = mkdtempSync(join(tmpdir(), 'mrmat-package-'))
  t.teardown(() => { rmSync(work, { recursive: true, force: true }) })

  // Pack a copy of the sources, with no dist/ of its own: prepack must build everything the package
  // ships, and concurrent test runs never rebuild the working tree's dist/ under one another.
  const stage = join(work, 'stage')
  mkdirSync(stage)
  const sources = [
    'package.json', 'package-lock.json', 'README.md', 'tsconfig.json', 'tsconfig.build.json',
    'src', 'plugins', 'drizzle', 'scripts/bundle.mjs', 'scripts/code-cache.mjs', 'scripts/precompile-schemas.mjs',
    'scripts/start-options.mjs', 'scripts/stamp-version.mjs', 'scripts/tap-plugins.mjs',
  ]
  mkdirSync(join(stage, 'scripts'))
  for (const entry of sources) {
    cpSync(join(ROOT, entry), join(stage, entry), { recursive: true })
  }
  symlinkSync(join(ROOT, 'node_modules'), join(stage, 'node_modules'), 'dir')
  const pack = join(work, 'pack')
  mkdirSync(pack)
  // As a release build: the orchestrator's MRMAT_VERSION is the version the installed bins print.
  await run('npm', ['pack', '--pack-destination', pack, '--loglevel', 'error'], stage, PACK_TIMEOUT_MS,
    { MRMAT_VERSION: RELEASE_VERSION })
  const tarball = join(pack, `${NAME}-${manifest.version}.tgz`)
  if (!existsSync(tarball)) throw new Error(`npm pack wrote no ${tarball}`)

  // Production dependencies only, as the image's runtime stage has them. --prefer-offline takes what
  // the project's own npm ci put in the npm cache; the registry is asked only for what is missing.
  // --ignore-scripts skips better-sqlite3's native compile (well over a minute of one core); the
  // addon the project's npm ci compiled, of the same exact version for the same Node, is copied in
  // instead, as the Dockerfile carries the build stage's over to the runtime stage.
  const host = join(work, 'host')
  mkdirSync(host)
  const hostManifest = { name: 'host-app', version: '1.0.0', private: true, type: 'module' }
  writeFileSync(join(host, 'package.json'), JSON.stringify(hostManifest))
  try {
    const flags = ['--omit=dev', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund']
    await run('npm', ['install', ...flags, '--loglevel', 'error', tarball], host, INSTALL_TIMEOUT_MS)
  } catch (error) {
    const message = (error as Error).message
    if (/ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|not within/.test(message)) {
      const why = 'installing the tarball needs the npm registry for whatever the npm cache lacks,'
        + ' and it could not be reached'
      throw new Error(`${why}:\n${message}`, { cause: error })
    }
    throw error
  }
  const addon = join(host, 'node_modules', NATIVE_ADDON)
  mkdirSync(join(addon, '..'), { recursive: true })
  copyFileSync(join(ROOT, 'node_modules', NATIVE_ADDON), addon)
  return { work, tarball, host, installed: join(host, 'node_modules', NAME) }
}

let shared: Promise<Installed> | undefined
const installed = async (): Promise<Installed> => (shared ??= packAndInstall())

/** A program that prints the URL it listens at; killed at the end of the test. */
async function startListening(t: Test, file: string, args: string[], cwd: string, pattern: RegExp,
  env: Record<string, string> = {}): Promise<string> {
  const child = new Child(t, file, args, { cwd, env, coverage: false })
  const [, url = ''] = await child.waitForLine(pattern, STEP_TIMEOUT_MS)
  return url
}

t.test('the tarball ships the build, the migrations and the declarations, and no sources or tests', async (t) => {
  const { tarball, work } = await installed()
  const listing = await run('tar', ['-tzf', tarball], work, STEP_TIMEOUT_MS)
  const files = listing.stdout.split('\n').filter((line) => line !== '')
  const shipped = [
    'dist/cli/main.js', 'dist/cli/client.js', 'dist/src/index.js', 'dist/src/index.d.ts',
    'drizzle/sqlite/meta/_journal.json', 'drizzle/postgres/meta/_journal.json', 'drizzle/mysql/meta/_journal.json',
    'README.md',
  ]
  for (const file of shipped) {
    t.ok(files.includes(`package/${file}`), `ships ${file}`)
  }
  for (const [subpath, target] of Object.entries(manifest.exports)) {
    const targets = typeof target === 'string' ? [target] : [target.types, target.import]
    for (const path of targets) {
      t.ok(files.includes(`package/${path.slice(2)}`), `${subpath}: ${path} is in the tarball`)
    }
  }
  t.same(files.filter((file) => /^package\/(src|plugins|test|scripts|dist\/test|dist\/scripts)\//.test(file)), [], 'no TypeScript sources, tests or scripts')
})

t.test('installed with production dependencies only: both bins, no dev dependency', async (t) => {
  const { host } = await installed()
  for (const bin of [NAME, `${NAME}-client`]) {
    t.ok(existsSync(join(host, 'node_modules', '.bin', bin)), `the ${bin} bin is linked`)
  }
  for (const dev of DEV_ONLY) t.notOk(existsSync(join(host, 'node_modules', dev)), `${dev} is not installed`)
  const { stdout } = await run(join(host, 'node_modules', '.bin', NAME), ['--version'], host, STEP_TIMEOUT_MS)
  t.equal(stdout, `${RELEASE_VERSION}\n`, '--version prints the version the build was given (MRMAT_VERSION)')
})

t.test('the installed server migrates its SQLite database at start and answers healthz', async (t) => {
  const { host, work } = await installed()
  const instance = join(work, 'instance')
  const url = await startListening(t, join(host, 'node_modules', '.bin', NAME),
    ['--host', '127.0.0.1', '--port', '0', '--instance-path', instance], host, /"msg":"Server listening at (http:\/\/[^"]+)"/)
  t.equal((await send(url, '/healthz/liveness')).status, 200, 'liveness')
  t.equal((await send(url, '/healthz/readiness')).status, 200, 'readiness')
  const db = new Sqlite(join(instance, `${NAME}.sqlite`), { readonly: true, fileMustExist: true })
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all()
    const expected = ['__drizzle_migrations', 'owners', 'resources']
    t.same(tables.filter((name) => expected.includes(name as string)), expected, 'the migrations made the tables')
  } finally {
    db.close()
  }
})

t.test('the installed bin (the bundled command line) serves every API with a real identity provider', async (t) => {
  // The bundle leaves drivers, Swagger UI's assets and yargs to node_modules and loads the auth stack and the
  // resource repository only when used: this is where a path or an import the bundle got wrong would show.
  const { host, work, installed: where } = await installed()
  const provider = await startTestProvider(t)
  // Node logs each CommonJS module it loads from node_modules under NODE_DEBUG=module.
  const server = new Child(t, join(host, 'node_modules', '.bin', NAME), [
    '--host', '127.0.0.1', '--port', '0', '--instance-path', join(work, 'bundled'),
    '--issuer', provider.issuer, '--audience', provider.audience,
  ], { cwd: host, env: { NODE_DEBUG: 'module' }, coverage: false })
  const [, url = ''] = await server.waitForLine(/"msg":"Server listening at (http:\/\/[^"]+)"/, STEP_TIMEOUT_MS)
  const token = await provider.jwt()
  t.same((await send(url, '/api/greeting/v3/', { token })).status, 200, 'greeting v3 with a token')
  // get-jwks requires jwk-to-pem as it loads; the bundle requires it on a first call (scripts/bundle.mjs), which the
  // server, making its PEM keys with Node's createPublicKey, never makes.
  t.match(server.stderr, /better-sqlite3/, 'the log lists what was loaded from node_modules')
  t.same(server.stderr.split('\n').filter((line) => /jwk-to-pem|elliptic/.test(line)), [],
    'the token was verified without jwk-to-pem or elliptic')
  // esbuild names each bundled CommonJS module's function by its path (relative to where the package was built).
  const script = readFileSync(join(where, 'dist', 'cli', 'server.cjs'), 'latin1')
  t.match(script, /node_modules\/get-jwks\/src\/get-jwks\.js"/, 'get-jwks is in the script')
  t.notMatch(script, /node_modules\/(jwk-to-pem|elliptic)\//, 'jwk-to-pem and elliptic, which only it uses, are not')
  t.match(script, /node_modules\/undici\/lib\/dispatcher\/agent\.js"/, 'undici\'s Agent, which bounds the fetches, is')
  t.notMatch(script, /node_modules\/undici\/(index|lib\/web\/fetch\/index)\.js"/, 'and not the rest of undici (its own fetch)')
  const created = await send<{ id: number }>(url, '/api/resource/v1/', { method: 'POST', token, json: { name: 'one' } })
  t.equal(created.status, 201, 'resource v1 creates')
  const read = await send(url, `/api/resource/v1/${String(created.body?.id)}`, { token })
  t.match(read.body, { name: 'one' }, 'and reads')
  // The bundle's validators and serializers were compiled as it was built (precompiled-schemas.ts); the one that lists
  // every error of a bad body is compiled by the bundle's own ajv when first needed.
  const refused = await send(url, '/api/resource/v1/', { method: 'POST', token, json: { name: 1, extra: true } })
  t.match([refused.status, refused.body], [400, { errors: [{ in: 'body' }, { in: 'body' }] }],
    'a bad body: a 400 listing both of its errors')
  t.equal((await send(url, '/api/resource/v1/?limit=0x10', { token })).status, 400, 'a hex limit: 400')
  const docs = await send(url, '/docs/')
  t.equal(docs.status, 200, 'Swagger UI answers')
  t.match(docs.headers['content-type'], /text\/html/, 'with its page')
  t.equal((await send(url, '/docs/static/swagger-ui.css')).status, 200, 'and serves its assets from node_modules')
  // The bundle's YAML writer is loaded from node_modules on its first call (lazyYaml in scripts/bundle.mjs).
  const yamlDocument = await send(url, '/docs/yaml')
  t.match([yamlDocument.status, yamlDocument.text], [200, /^openapi: 3\.1\.0\n/], 'and the document as YAML')
  const client = await run(join(host, 'node_modules', '.bin', `${NAME}-client`), ['--help'], host, STEP_TIMEOUT_MS)
  t.match(client.stdout, /Commands:/, 'the client bin prints its help')
})

/**
 * The functions of the server's script that ran in a process of the installed bin, by name (esbuild names each bundled
 * CommonJS module's function by its path, `…node_modules/<package>/…`), from V8's coverage of it: each with its calls.
 */
async function scriptFunctionCalls(t: Test, args: string[],
  env: Record<string, string> = {}): Promise<Map<string, number>> {
  const { host } = await installed()
  const coverage = mkdtempSync(join(tmpdir(), 'mrmat-coverage-'))
  t.teardown(() => { rmSync(coverage, { recursive: true, force: true }) })
  await run(join(host, 'node_modules', '.bin', NAME), args, host, STEP_TIMEOUT_MS,
    { ...env, NODE_V8_COVERAGE: coverage })
  const calls = new Map<string, number>()
  for (const name of readdirSync(coverage)) {
    const { result } = JSON.parse(readFileSync(join(coverage, name), 'utf8')) as {
      result: { url: string, functions: { functionName: string, ranges: { count: number }[] }[] }[]
    }
    for (const script of result.filter((entry) => entry.url.endsWith('/dist/cli/server.cjs'))) {
      for (const fn of script.functions) {
        calls.set(fn.functionName, (calls.get(fn.functionName) ?? 0) + (fn.ranges[0]?.count ?? 0))
      }
    }
  }
  return calls
}

t.test('the bundled command line runs no OpenTelemetry and no prom-client until asked', async (t) => {
  // The openapi command builds the app with every API and makes it ready, as a start does, then exits.
  const calls = await scriptFunctionCalls(t, ['openapi'])
  const modules = (pattern: RegExp) => [...calls].filter(([name]) => pattern.test(name))
  t.ok(modules(/(?:^|\/)node_modules\/fastify\//).some(([, count]) => count > 0), 'the coverage shows the modules that ran')
  t.ok(modules(/(?:^|\/)node_modules\/prom-client\//).length > 0, 'prom-client is in the script')
  t.same(modules(/(?:^|\/)node_modules\/prom-client\//).filter(([, count]) => count > 0), [], 'and none of it ran')
  const { host } = await installed()
  const result = await run(join(host, 'node_modules', '.bin', NAME), ['openapi'], host, STEP_TIMEOUT_MS,
    { NODE_DEBUG: 'module' })
  t.match(result.stderr, /better-sqlite3/, 'the log lists what was loaded from node_modules')
  t.same(result.stderr.split('\n').filter((line) => /opentelemetry|@fastify\/otel/.test(line)), [],
    'no OpenTelemetry package was loaded')
})

t.test('the bundled command line compiles no serializer as it starts: it never loads the compiler', async (t) => {
  // The openapi command builds the app with every API and makes it ready, as a start does, then exits. The bundle
  // requires fast-json-stringify's compiler from node_modules on the first compile (scripts/bundle.mjs), and Node logs
  // each CommonJS module it loads under NODE_DEBUG=module.
  const { host } = await installed()
  const result = await run(join(host, 'node_modules', '.bin', NAME), ['openapi'], host, STEP_TIMEOUT_MS,
    { NODE_DEBUG: 'module' })
  t.match(result.stdout, /^\{\n {2}"openapi": "3\.1\.0"/, 'the document was written')
  t.match(result.stderr, /better-sqlite3/, 'the log lists what was loaded from node_modules')
  t.same(result.stderr.split('\n').filter((line) => /fast-json-stringify/.test(line)), [],
    'not the compiler: every serializer came compiled with the bundle')
})

t.test('every chunk of the bundled command lines is ASCII, so V8 holds its source at a byte a character', async (t) => {
  const { installed: where } = await installed()
  const dir = join(where, 'dist', 'cli')
  const chunks = readdirSync(dir).filter((name) => /\.c?js$/.test(name))
  t.ok(chunks.length > 2, `the command lines' chunks (${String(chunks.length)})`)
  t.same(chunks.filter((name) => /[\u0080-\uffff]/.test(readFileSync(join(dir, name), 'utf8'))), [],
    'no chunk holds a character beyond ASCII')
})

t.test('the installed bin reads its command line\'s code compiled, from the cache for its node options', async (t) => {
  // The caches are made by the pack's build, for no options (npx, the bin) and for those of npm start and the image
  // (src/cli/code-cache.ts); test/code-cache.test.ts shows what happens when none fits.
  const { host, installed: where } = await installed()
  const main = join(where, 'dist', 'cli', 'main.js')
  for (const options of [[], startNodeFlags(ROOT)]) {
    const result = await run(process.execPath, [...options, main, '--version'], host, STEP_TIMEOUT_MS,
      { NODE_DEBUG: 'mrmat-code-cache' })
    t.match(result.stderr, /cache \S+ used/, `node ${options.join(' ')}: the cache is used`)
    t.equal(result.stdout, `${RELEASE_VERSION}\n`, 'and the command line answers')
  }
})

t.test('the installed bin with --log-format pretty: pino-pretty, imported through the bin', async (t) => {
  const { host, work } = await installed()
  const url = await startListening(t, join(host, 'node_modules', '.bin', NAME), [
    '--host', '127.0.0.1', '--port', '0', '--instance-path', join(work, 'pretty'), '--log-format', 'pretty',
  ], host, /^\[[\d:.]+\] INFO: Server listening at (http:\/\/\S+)$/m)
  t.equal((await send(url, '/api/greeting/v1/')).status, 200, 'and serves')
})

t.test('the installed bin with --metrics and an OTLP exporter: metrics port and spans', async (t) => {
  const { host, work } = await installed()
  const receiver = await startOtlpReceiver(t)
  const child = new Child(t, join(host, 'node_modules', '.bin', NAME), ['--host', '127.0.0.1', '--port', '0',
    '--instance-path', join(work, 'observed'), '--metrics', '--metrics-port', '0'], { cwd: host, coverage: false,
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '100' } })
  const [, url = ''] = await child.waitForLine(/"msg":"Server listening at (http:\/\/[^"]+)"/, STEP_TIMEOUT_MS)
  const [, metricsUrl = ''] = await child.waitForLine(/metrics are served at (http:\/\/[^"]+)\/metrics/)
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
  const answer = await send(url, '/api/greeting/v1/', { headers: {
    traceparent: `00-${traceId}-00f067aa0ba902b7-01` } })
  t.equal(answer.status, 200)
  const span = await pollUntil(() => receiver.spans.find((s) => s.traceId === traceId && s.name === 'request'),
    STEP_TIMEOUT_MS, 'the request\'s span')
  t.equal(span.parentSpanId, '00f067aa0ba902b7', 'the upstream span is its parent')
  const text = await (await fetch(`${metricsUrl}/metrics`)).text()
  t.equal(valueOf(text, 'http_request_duration_seconds_count', { route: '/api/greeting/v1' }), 1)
})

const HOST_APP = `
import Fastify from 'fastify'
import {
  bearerAuth, databasePlugin, openDatabase, parseDatabaseUrl, problemDetails, resolveAuthSettings,
} from '${NAME}'
import greetingV2 from '${NAME}/plugins/greeting/v2'
import resourceV1 from '${NAME}/plugins/resource/v1'

const app = Fastify()
await app.register(problemDetails)
const settings = resolveAuthSettings({ issuer: process.env.ISSUER, audience: process.env.AUDIENCE })
await app.register(bearerAuth, { settings })
const database = await openDatabase(parseDatabaseUrl(process.env.DB_FILE))
await app.register(databasePlugin, { database, migrate: true })
await app.register(greetingV2, { prefix: '/hello' })
await app.register(resourceV1, { prefix: '/things' })
app.get('/status', async () => ({ up: true }))
console.log('listening at ' + await app.listen({ host: '127.0.0.1', port: 0 }))
`

t.test('a host app mounts greeting v2 and resource v1 from the installed package at its own prefixes', async (t) => {
  const { host, work } = await installed()
  const provider = await startTestProvider(t)
  writeFileSync(join(host, 'host-app.mjs'), HOST_APP)
  const url = await startListening(t, process.execPath, ['host-app.mjs'], host, /listening at (http:\/\/\S+)/, {
    ISSUER: provider.issuer,
    AUDIENCE: provider.audience,
    DB_FILE: join(work, 'host.sqlite'),
  })
  const hello = await send(url, '/hello/?name=Bob')
  t.same([hello.status, hello.body], [200, { message: 'Hello Bob' }], 'greeting v2 at /hello')
  t.equal((await send(url, '/api/greeting/v2/')).status, 404, 'not at its own prefix')
  const refused = await send(url, '/things/')
  t.equal(refused.status, 401, 'resource v1 at /things wants a token')
  t.match(refused.body, { status: 401, instance: '/things/' }, 'as a problem from the host\'s problem details')
  const token = await provider.jwt()
  const created = await send(url, '/things/', { method: 'POST', token, json: { name: 'first' } })
  t.equal(created.status, 201, 'a real token creates a resource')
  t.match((await send(url, '/things/', { token })).body, { resources: [{ name: 'first' }] }, 'and lists it')
  const status = await send(url, '/status')
  t.same([status.status, status.body], [200, { up: true }], 'the host\'s own route')
})

const CONSUMER = `
import Fastify, { type FastifyInstance } from 'fastify'
import {
  buildApp, bearerAuth, databasePlugin, openDatabase, parseDatabaseUrl, problemDetails, readiness, openapi,
  resolveAuthSettings, readClientSecrets, HttpProblem, type AppOptions, type AuthSettings, type Database,
} from '${NAME}'
import greetingV1 from '${NAME}/plugins/greeting/v1'
import greetingV2 from '${NAME}/plugins/greeting/v2'
import greetingV3 from '${NAME}/plugins/greeting/v3'
import resourceV1 from '${NAME}/plugins/resource/v1'
import healthz from '${NAME}/plugins/healthz'
import auth from '${NAME}/auth'
import { resolveAuthSettings as resolve } from '${NAME}/auth/settings'
import { openDatabase as open } from '${NAME}/database'
import databaseOnly from '${NAME}/database/plugin'
import problems from '${NAME}/errors'

const options: AppOptions = { swaggerUi: false }
const whole: FastifyInstance = await buildApp(options)
const database: Database = await openDatabase(parseDatabaseUrl(':memory:'))
const dialect: 'sqlite' | 'postgres' | 'mysql' = database.dialect
const settings: AuthSettings | undefined = resolveAuthSettings({ issuer: 'https://id.example', audience: 'host' })

const app = Fastify()
await app.register(problemDetails)
await app.register(readiness)
await app.register(openapi, { ui: false })
await app.register(bearerAuth, { settings })
await app.register(databasePlugin, { database, migrate: true })
await app.register(healthz, { prefix: '/healthz' })
await app.register(greetingV1, { prefix: '/v1' })
await app.register(greetingV2, { prefix: '/v2' })
await app.register(greetingV3, { prefix: '/v3' })
await app.register(resourceV1, { prefix: '/things', readScope: 'read', writeScope: 'write' })
// The plugins' declarations augment Fastify's types.
const decorated: Database = app.database
app.get('/fail', async () => { throw new HttpProblem(418, 'no coffee') })

// @ts-expect-error buildApp's options are typed: port is not among them
await buildApp({ port: 8080 })
// @ts-expect-error parseDatabaseUrl takes a string
parseDatabaseUrl(42)
// @ts-expect-error the auth plugin needs its settings
await app.register(bearerAuth, {})

export const used = [whole, dialect, decorated, readClientSecrets, auth, resolve, open, databaseOnly, problems]
`

t.test('a TypeScript consumer type-checks against the installed declarations (NodeNext)', async (t) => {
  const { host } = await installed()
  writeFileSync(join(host, 'consumer.ts'), CONSUMER)
  writeFileSync(join(host, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2023',
      lib: ['ES2023'],
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      // The host's own @types/node, as any TypeScript project on Node has (here the project's).
      typeRoots: [join(ROOT, 'node_modules', '@types')],
      types: ['node'],
    },
    files: ['consumer.ts'],
  }))
  const { stdout } = await run(process.execPath, [TSC, '-p', 'tsconfig.json'], host, STEP_TIMEOUT_MS)
  t.equal(stdout, '', 'no type errors, and every @ts-expect-error met one')
})

/** The README's quick start block, its lines without their comments. */
function quickStart(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  const block = /^## Quick start\n[\s\S]*?```sh\n([\s\S]*?)```/m.exec(readme)?.[1] ?? ''
  return block.split('\n').map((line) => line.replace(/#.*$/, '').trim()).filter((line) => line !== '')
}

/** A command line as printed for a person, as argv (no quoting in these). */
const argv = (line: string): string[] => line.trim().split(/\s+/)

t.test('the README\'s quick start as written: dev, the client\'s login through the device flow, resource create',
  async (t) => {
    // From the installed package, with its bins as npx finds them (in a clone npx runs the package's own bins).
    const { host, work } = await installed()
    const devLine = quickStart().find((line) => / dev$/.test(line))
    t.equal(devLine, `npx ${NAME} dev`, 'the quick start\'s third line starts the server with its identity provider')
    const instance = join(work, 'quick-start')
    const home = join(work, 'quick-start-home')
    const env = { HOME: home, XDG_CONFIG_HOME: join(home, 'config'), XDG_CACHE_HOME: join(home, 'cache') }
    mkdirSync(home, { recursive: true })
    // Free ports rather than 8080 and 8081, and an instance path of the test's: the rest exactly as printed.
    const [npx = 'npx', ...args] = argv(devLine ?? '')
    const dev = new Child(t, npx, [...args, '--port', '0', '--dev-issuer-port', '0', '--instance-path', instance],
      { cwd: host, coverage: false, env })
    // npx runs the server as its child: should the test fail midway, the server itself is killed before npx (teardowns
    // run last registered first), or its end of the pipes would keep npx's output open.
    let serverPid: number | undefined
    t.teardown(() => {
      try {
        if (serverPid !== undefined) process.kill(serverPid, 'SIGKILL')
      } catch { /* gone already */ }
    })
    const [, pid = ''] = await dev.waitForLine(/^\{.*"pid":(\d+),/, STEP_TIMEOUT_MS)
    serverPid = Number(pid)
    await dev.waitForLine(/"msg":"Server listening at /, STEP_TIMEOUT_MS)
    const steps = await pollUntil(() => (/curl .*\n/.test(dev.stderr) ? dev.stderr : undefined), STEP_TIMEOUT_MS,
      'the next steps')
    const printed = (pattern: RegExp) => {
      const line = steps.split('\n').find((candidate) => pattern.test(candidate))
      if (line === undefined) throw new Error(`no line matching ${String(pattern)} in:\n${steps}`)
      return line
    }

    const loginLine = printed(/^ {2}npx \S+-client login /)
    const [loginNpx = 'npx', ...loginArgs] = argv(loginLine)
    const login = new Child(t, loginNpx, loginArgs, { cwd: host, coverage: false, env })
    const [, uri = '', code = ''] = await login.waitForLine(/open (\S+) and enter the code (\S+)$/, STEP_TIMEOUT_MS)
    await signInDevice(uri, code, 'alice')
    const loggedIn = await login.waitForExit(STEP_TIMEOUT_MS)
    t.equal(loggedIn.code, 0, `${loginLine.trim()}: ${loggedIn.stderr}`)
    t.match(loggedIn.stdout, /^Logged in to http:\/\/localhost:\d+ as alice\.$/m, 'signed in as the name typed')

    const createLine = printed(/^ {2}npx \S+-client resource create /)
    const [createNpx = 'npx', ...createArgs] = argv(createLine)
    const created = await run(createNpx, createArgs, host, STEP_TIMEOUT_MS, env)
    const id = /^Created resource (\d+): my-resource$/m.exec(created.stdout)?.[1]
    t.ok(id, `${createLine.trim()}: ${created.stdout}`)

    // The curl line's token command, then the resource by the API itself.
    const tokenCommand = /\$\(([^)]+)\)/.exec(printed(/^ {2}curl /))?.[1] ?? ''
    const [tokenNpx = 'npx', ...tokenArgs] = argv(tokenCommand)
    const token = (await run(tokenNpx, tokenArgs, host, STEP_TIMEOUT_MS, env)).stdout.trim()
    const server = /--server (\S+)/.exec(createLine)?.[1] ?? ''
    const resource = await send(server, `/api/resource/v1/${id ?? ''}`, { token })
    t.equal(resource.status, 200, 'the resource is there')
    t.match(resource.body, { name: 'my-resource', owner: { subject: 'alice', name: 'alice' } }, 'alice owns it')
    // Ctrl-C in a terminal signals the whole foreground process group, the server with npx.
    process.kill(serverPid, 'SIGINT')
    const stopped = await dev.waitForExit(STEP_TIMEOUT_MS)
    t.equal(stopped.code, 0, 'dev stops on Ctrl-C')
    t.match(stopped.stdout, /"msg":"stopped: the listener and the database are closed"/)
    serverPid = undefined
  })

const EXAMPLES = ['host-app.ts', 'greeting-v3.ts', 'plugins.ts']

t.test('the README\'s example programs type-check against the installed declarations and run', async (t) => {
  const { host, work } = await installed()
  // A TypeScript host project of its own: "type": "module", the README's tsconfig, the installed node_modules.
  const project = join(work, 'examples')
  mkdirSync(project)
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'examples', private: true, type: 'module' }))
  symlinkSync(join(host, 'node_modules'), join(project, 'node_modules'), 'dir')
  for (const file of [...EXAMPLES, 'tsconfig.json']) copyFileSync(join(ROOT, 'examples', file), join(project, file))

  // No skipLibCheck: the package's own declarations and the examples compile; the only errors are drizzle-orm's
  // in its own files (gel-core, singlestore-core, ...), which is why the README's tsconfig sets skipLibCheck.
  const strictArgs = [TSC, '-p', 'tsconfig.json', '--noEmit', '--skipLibCheck', 'false']
  const strict = await new Child(t, process.execPath, strictArgs, { cwd: project, coverage: false })
    .waitForExit(STEP_TIMEOUT_MS)
  const errors = strict.stdout.split('\n').filter((line) => /^\S+\(\d+,\d+\): error/.test(line))
  t.ok(errors.length > 0, 'drizzle-orm\'s own declarations still have errors (else the README\'s reason is stale)')
  t.same(errors.filter((line) => !/^(\.\.\/host\/)?node_modules\/drizzle-orm\//.test(line)), [],
    'no error in the package\'s declarations or the examples, with @types/node only (npm installs it with mysql2)')
  const built = await run(process.execPath, [TSC, '-p', 'tsconfig.json'], project, STEP_TIMEOUT_MS)
  t.equal(built.stdout, '', 'the README\'s tsconfig compiles them')

  const provider = await startTestProvider(t)
  await provider.writeClientSecrets(project)
  const start = async (file: string) => startListening(t, process.execPath, [join('dist', file.replace(/\.ts$/, '.js'))],
    project, /"msg":"Server listening at (http:\/\/127\.0\.0\.1:\d+)"/, { PORT: '0', ISSUER: provider.issuer })

  const hostApp = await start('host-app.ts')
  t.same((await send(hostApp, '/')).body, { host: 'mine' }, 'host-app: the host\'s route')
  const token = await provider.jwt()
  const created = await send(hostApp, '/mrmat/api/resource/v1/', { method: 'POST', token, json: { name: 'one' } })
  t.equal(created.status, 201, 'host-app: the API under /mrmat, with a token')

  const greeting = await start('greeting-v3.ts')
  const hello = await send(greeting, '/hello/', { token: await provider.jwt({ audience: 'my-api' }) })
  t.same([hello.status, hello.body], [200, { message: 'Hello test-client-display' }], 'greeting-v3: the token\'s name')

  const plugins = await start('plugins.ts')
  t.same((await send(plugins, '/hello/?name=Bob')).body, { message: 'Hello Bob' }, 'plugins: greeting v2 at /hello')
  t.equal((await send(plugins, '/things/')).status, 401, 'plugins: resource v1 at /things, no provider: 401')
})
