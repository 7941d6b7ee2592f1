import { createRequire } from 'node:module'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { parseCommandLine } from '#src/cli/command-line.js'
import { precompiled, recorder, type PrecompiledTable, type SchemaCompile } from '#src/lib/precompiled-schemas.js'
import { startTestProvider, type TestProvider } from './fixtures/oidc-provider.js'
import { build, type BuildOptions } from './helpers/app.js'
import { READ_SCOPE, settingsFromSecrets, WRITE_SCOPE } from './helpers/auth.js'
import { ROOT } from './helpers/build.js'
import { folder } from './helpers/folder.js'
import { send } from './helpers/http.js'

// The command line's bundle holds the validators and serializers of its start as code written at build time
// (scripts/precompile-schemas.mjs, src/lib/precompiled-schemas.ts). Here the table is written from the sources, as the
// build writes it from dist/src, and put in place: a start then compiles nothing, and answers as one that compiles.

interface Generated { source: string, count: number }
const { precompiledTable } = await import(join(ROOT, 'scripts/precompile-schemas.mjs')) as {
  precompiledTable: (load: (path: string) => Promise<unknown>) => Promise<Generated>
}

const generated = await precompiledTable(async (path) => import(`#src/${path}`))

/** The table's code run as the bundle runs it, its require()s resolved from the project as esbuild resolves them. */
function evaluate(source: string): PrecompiledTable {
  const require = createRequire(join(ROOT, 'src/lib/precompiled-schemas.ts'))
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- the build's own output, as the bundle holds it
  return (new Function('require', `return ${source}`) as (r: NodeJS.Require) => PrecompiledTable)(require)
}

/** The CLI's default configuration, as `serve` hands it to buildApp. */
async function cliConfig(t: Test, flags: string[] = []): Promise<BuildOptions> {
  const invocation = await parseCommandLine(['--instance-path', folder(t), ...flags], {})
  if (!('config' in invocation)) throw new Error('no configuration')
  // The CLI opens its own database; build() gives each app a fresh in-memory one.
  const config: Record<string, unknown> = { ...invocation.config, shutdownReadiness: true }
  delete config.database
  return config
}

/** Builds an app with the table in place (or none), and lists what its start compiled. */
async function withTable(table: PrecompiledTable | undefined,
  start: () => Promise<FastifyInstance>): Promise<{ app: FastifyInstance, compiled: SchemaCompile[] }> {
  const compiled: SchemaCompile[] = []
  precompiled.table = table
  recorder.record = (compile) => { compiled.push(compile) }
  // Fastify compiles as the app gets ready, inside start(): both are reset once it has, whatever happened.
  try {
    return { app: await start(), compiled }
  } finally {
    precompiled.table = undefined
    recorder.record = undefined
  }
}

t.test('the table holds a validator or a serializer for every schema a start compiles', async (t) => {
  t.ok(generated.count >= 10, `the default start's schemas, and the metrics route's (${String(generated.count)})`)
  const table = evaluate(generated.source)
  for (const flags of [[], ['--metrics']]) {
    const config = await cliConfig(t, flags)
    const { compiled } = await withTable(table, () => build(t, config))
    t.same(compiled, [], `${flags.join(' ') || 'default flags'}: nothing compiled at start`)
  }
  const settings = await cliConfig(t)
  const none = await withTable(undefined, () => build(t, settings))
  t.ok(none.compiled.length >= generated.count - 1, `without the table, the same start compiles them all (${
    String(none.compiled.length)})`)
})

t.test('a schema missing from the table is compiled, and only that one', async (t) => {
  const table = evaluate(generated.source)
  const [context, codes] = [...table].find(([, entries]) => [...entries.keys()].some((key) => key.startsWith('body\n')))
    ?? []
  const bodyKey = [...codes?.keys() ?? []].find((key) => key.startsWith('body\n'))
  if (context === undefined || codes === undefined || bodyKey === undefined) throw new Error('no body validator')
  const without = new Map(table)
  without.set(context, new Map([...codes].filter(([key]) => key !== bodyKey)))
  const settings = await cliConfig(t)
  const { app, compiled } = await withTable(without, () => build(t, settings))
  // POST and PUT share the body's schema: each route compiles its own validator.
  t.same([...new Set(compiled.map((c) => c.key))], [bodyKey], 'the resource body\'s validator alone')
  t.ok(app.hasRoute({ method: 'POST', url: '/api/resource/v1/' }), 'and the route is served')
})

t.test('with the table, every API answers as it does compiled: valid and invalid input, every status', async (t) => {
  const provider: TestProvider = await startTestProvider(t)
  const auth = await settingsFromSecrets(t, provider)
  const table = evaluate(generated.source)
  // The answers are compared, not the load: on a busy machine (CI), shedding by event-loop delay answered 503 to one
  // app's requests and not the other's. Both drop that one threshold, and keep the same schemas.
  const settings = async () => ({ ...await cliConfig(t, ['--max-event-loop-delay', '0']), auth })
  const restored = await withTable(table, async () => build(t, await settings()))
  t.same(restored.compiled, [], 'with an identity provider too, nothing compiled at start')
  const compiledApp = (await withTable(undefined, async () => build(t, await settings()))).app
  const token = await provider.jwt({ scope: `${READ_SCOPE} ${WRITE_SCOPE}` })
  const requests: [string, string, unknown?][] = [
    ['GET', '/healthz/'], ['GET', '/healthz/liveness'], ['GET', '/healthz/readiness'],
    ['GET', '/api/greeting/v1/'], ['GET', '/api/greeting/v2/?name=Bob'],
    ['GET', `/api/greeting/v2/?name=${'x'.repeat(256)}`], ['GET', '/api/greeting/v2/?name=a&name=b'],
    ['GET', '/api/greeting/v3/'],
    ['POST', '/api/resource/v1/', { name: 'one' }], ['POST', '/api/resource/v1/', { name: 1, extra: true }],
    ['POST', '/api/resource/v1/', { name: '' }], ['POST', '/api/resource/v1/', []],
    ['GET', '/api/resource/v1/1'], ['GET', '/api/resource/v1/0x1'], ['GET', '/api/resource/v1/99'],
    ['GET', '/api/resource/v1/'], ['GET', '/api/resource/v1/?limit=10'], ['GET', '/api/resource/v1/?limit=1e3'],
    ['GET', '/api/resource/v1/?limit=0'],
    ['PUT', '/api/resource/v1/1', { name: 'two' }], ['PUT', '/api/resource/v1/1', { name: 'x'.repeat(256) }],
    ['DELETE', '/api/resource/v1/1'], ['DELETE', '/api/resource/v1/1'],
  ]
  const answers = async (app: FastifyInstance): Promise<unknown[]> => {
    const seen: unknown[] = []
    for (const [method, path, json] of requests) {
      const answer = await send(app, path, { method, token, ...json === undefined ? {} : { json } })
      const body: Record<string, unknown> = { ...answer.body as Record<string, unknown> | undefined }
      delete body.requestId
      seen.push([method, path.slice(0, 40), answer.status, answer.headers['content-type'], body])
    }
    return seen
  }
  const expected = await answers(compiledApp)
  t.same(await answers(restored.app), expected, 'the same statuses, types and bodies')
  t.ok(expected.some((answer) => (answer as unknown[])[2] === 400), 'invalid input among them')
  t.ok(expected.some((answer) => (answer as unknown[])[2] === 201), 'and a created resource')
})
