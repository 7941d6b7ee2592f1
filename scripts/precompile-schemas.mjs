// The validators and serializers the command line's server compiles at start, written as code for its bundle (see
// src/lib/precompiled-schemas.ts; scripts/bundle.mjs calls this after tsc has written dist/src).
//
// It builds the app as `serve` does, with each configuration that mounts other routes (metrics on the public port),
// and records every schema Fastify compiles: each becomes the module text ajv's standalone mode writes for its
// validator (from the very ajv that compiled it, so that its options are the server's) or fast-json-stringify's
// for its serializer (the same compiler, in standalone mode).
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler/standalone.js'
import { AjvReference } from '@fastify/ajv-compiler'

const require = createRequire(import.meta.url)
// The ajv that compiled the validators is the compiler's own dependency.
const standaloneCode = createRequire(require.resolve('@fastify/ajv-compiler'))('ajv/dist/standalone').default

const root = new URL('..', import.meta.url).pathname
const fromDist = (path) => import(join(root, 'dist/src', path))

/**
 * The table as JavaScript source, `new Map([[context, new Map([[key, () => the code's module.exports]])]])`, and how
 * many functions it holds. `load` imports a module of the server by its path under src/ (`lib/validation.js`): by
 * default tsc's output in dist/src.
 */
export async function precompiledTable(load = fromDist) {
  const { recorder } = await load('lib/precompiled-schemas.js')
  const { parseCommandLine } = await load('cli/command-line.js')
  const { buildApp } = await load('app.js')
  const { openSqlite } = await load('plugins/database/sqlite.js')
  const table = new Map()
  const add = ({ context, key }, code) => {
    if (!table.has(context)) table.set(context, new Map())
    table.get(context).set(key, code)
  }
  recorder.record = (compile, made) => {
    if (compile.kind === 'validator') {
      add(compile, standaloneCode(made.compile[AjvReference].ajv, made.validate))
    } else {
      const { externalSchemas, options, route } = made
      add(compile, SerializerSelector()(externalSchemas, { ...options, mode: 'standalone' })(route))
    }
  }
  const instance = mkdtempSync(join(tmpdir(), 'mrmat-precompile-'))
  try {
    for (const flags of [[], ['--metrics']]) {
      const invocation = await parseCommandLine(['--instance-path', instance, ...flags], {})
      const app = await buildApp({ ...invocation.config, database: openSqlite(':memory:'), migrate: true,
        shutdownReadiness: true })
      await app.ready()
      await app.close()
    }
  } finally {
    recorder.record = undefined
    rmSync(instance, { recursive: true, force: true })
  }
  const entries = [...table].map(([context, codes]) => `  [${JSON.stringify(context)}, new Map([\n`
    + [...codes].map(([key, code]) => `    [${JSON.stringify(key)}, () => {\n`
      + `      const module = { exports: {} }\n      ;(function (module) {\n${code}\n})(module)\n`
      + '      return module.exports\n    }],\n').join('')
    + '  ])],\n')
  const count = [...table.values()].reduce((n, codes) => n + codes.size, 0)
  return { source: `new Map([\n${entries.join('')}])`, count }
}
