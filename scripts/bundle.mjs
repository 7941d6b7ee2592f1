// The two command lines (server and client) as bundles in dist/cli/, for `npm run build`.
//
// Why: Node 20 spends most of a cold start finding, reading and compiling modules, one file at a time: the server
// loads about 900 of them (TypeBox alone is 247 files, drizzle 113, ajv 86). Bundled into a few chunks, the start
// takes about a third less CPU (measured from spawn to the first 200 on /healthz/). The library (dist/src,
// dist/plugins) stays as tsc writes it: host apps bundle it themselves if they wish.
//
// What stays outside, loaded from node_modules at run time: native addons and the drivers (better-sqlite3, pg,
// mysql2), packages that read files next to their own code (@fastify/swagger-ui's assets; yargs reads its locales
// too, but is bundled and told where it is installed: yargsInPlace below), and
// pino-pretty (loaded only for --log-format pretty), oidc-provider (an optional dependency, loaded only by the dev
// command: the image leaves it out), and OpenTelemetry (loaded only when an OTLP exporter is configured): its API
// keeps one global registration that the SDK, @fastify/otel and this code must share, so it is loaded from
// node_modules as one copy, never bundled beside another. yaml too, and only when first called (lazyYaml below):
// @fastify/swagger loads it at start to write YAML documents, which the server never asks for.
//
// The server's command line is one script (dist/cli/server.cjs) that its bin compiles with V8's code cache, made here
// by a start of it (src/cli/code-cache.ts, scripts/code-cache.mjs): a start reads the bytecode instead of compiling.
// What the sources import dynamically runs only when imported (esbuild wraps such a module, and what only it imports,
// in a function): a server without PostgreSQL runs none of the PostgreSQL code, one without an identity provider none
// of the auth stack. The client's command line, which has no such cache, stays an ES module split into chunks.
import { execFileSync } from 'node:child_process'
import { readdirSync, rmSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { build, transform } from 'esbuild'
import { precompiledTable } from './precompile-schemas.mjs'
import { startNodeFlags } from './start-options.mjs'

const root = new URL('..', import.meta.url).pathname
const outdir = `${root}dist/cli`

/**
 * A plugin that bundles, in place of the package `name`, a module of a few lines (`contents`, CommonJS) whose require()
 * of `name` loads the real one from node_modules when it is first called.
 */
function requiredOnFirstUse(name, contents) {
  const namespace = `first-use:${name}`
  return {
    name: namespace,
    setup(esbuild) {
      const filter = new RegExp(`^${name.replace(/[/.]/g, '\\$&')}$`)
      esbuild.onResolve({ filter }, (args) => (args.namespace === namespace
        ? { path: name, external: true }
        : { path: name, namespace }))
      esbuild.onLoad({ filter: /.*/, namespace }, () => ({ loader: 'js', contents }))
    },
  }
}

/**
 * `yaml`, as a bundled package imports it, is a module of a few lines (no file of its own: the image and the package
 * test copy only the build scripts) that requires the real one from node_modules on its first call.
 */
const lazyYaml = requiredOnFirstUse('yaml', "exports.stringify = (...args) => require('yaml').stringify(...args)\n"
  + "exports.parse = (...args) => require('yaml').parse(...args)\n")

/**
 * `@fastify/fast-json-stringify-compiler`, as the server imports it, is a module of a few lines that requires the real
 * one from node_modules when a serializer is first compiled. The bundle's serializers were compiled as it was built
 * (precompiledSchemas below): loaded as the server loads, the compiler and fast-json-stringify with ajv under it were
 * 10 ms of every start (profiled) for nothing.
 */
const lazySerializerCompiler = requiredOnFirstUse('@fastify/fast-json-stringify-compiler', 'let real\n'
  + "module.exports = () => (...args) => (real ??= require('@fastify/fast-json-stringify-compiler')())(...args)\n")

/**
 * `jwk-to-pem`, which get-jwks requires as it loads, for its getPublicKey: the server makes its PEM keys with Node's
 * own createPublicKey (src/plugins/auth/identity-provider.ts) and never calls it. Bundled, it and elliptic, which only
 * it uses (120 KB of the script), were read and checked by every start, and evaluated by every start with an identity
 * provider. A call, should one come, requires it from node_modules, where npm installs it for get-jwks.
 */
const lazyJwkToPem = requiredOnFirstUse('jwk-to-pem',
  "module.exports = (...args) => require('jwk-to-pem')(...args)\n")

/**
 * undici, as the identity provider imports it for its Agent (the dispatcher that bounds the provider's fetches): that
 * class alone, with what it requires, instead of the package's index, which loads every other client and its own
 * fetch, WebSocket, cache and mocks besides. Only the Agent is imported (the build fails otherwise: esbuild reports an
 * import it cannot find in this module).
 */
const undiciAgentOnly = {
  name: 'undici-agent-only',
  setup(esbuild) {
    esbuild.onResolve({ filter: /^undici$/ }, () => ({ path: 'undici', namespace: 'undici-agent-only' }))
    esbuild.onLoad({ filter: /.*/, namespace: 'undici-agent-only' }, () => ({
      loader: 'js', resolveDir: root, contents: "export { default as Agent } from 'undici/lib/dispatcher/agent.js'\n",
    }))
  },
}

/**
 * A plugin that rewrites a package's file as it is bundled. The build fails when `expected` is no longer in the file:
 * a new release of the package changed what the rewrite relies on.
 */
function rewrite(name, filter, expected, transform) {
  return {
    name,
    setup(esbuild) {
      esbuild.onLoad({ filter }, async (args) => {
        const source = await readFile(args.path, 'utf8')
        if (!source.includes(expected)) throw new Error(`${name}: ${args.path} no longer holds ${expected}`)
        return { loader: 'js', contents: transform(source) }
      })
    },
  }
}

/**
 * yargs, bundled (loaded from node_modules, its 40-odd modules were a tenth of the start): its ES module shim finds
 * its locales, and the app's package.json, from its own URL. Given the URL of that file where yargs is installed (a
 * dependency, so it is), it finds them where it always did.
 */
const yargsInPlace = rewrite('yargs-in-place', /[\\/]yargs[\\/]lib[\\/]platform-shims[\\/]esm\.mjs$/, 'import.meta.url',
  (source) => "import { pathToFileURL as mrmatPathToFileURL } from 'node:url';\n"
    + 'const mrmatYargsShimUrl = mrmatPathToFileURL(mrmatCreateRequire(import.meta.url)'
    + ".resolve('yargs/package.json').replace(/package\\.json$/, 'lib/platform-shims/esm.mjs')).href;\n"
    + source.replaceAll('import.meta.url', 'mrmatYargsShimUrl'))

/**
 * string-width (under yargs's help output) makes an Intl.Segmenter as it loads, which loads ICU's break rules: 20 ms of
 * every start, for help text the server never prints. Made on first use instead.
 */
const EAGER_SEGMENTER = 'const segmenter = new Intl.Segmenter();'
const lazySegmenter = rewrite('lazy-segmenter', /[\\/]string-width[\\/]index\.js$/, EAGER_SEGMENTER,
  (source) => source.replace(EAGER_SEGMENTER, 'let mrmatSegmenter;\nconst segmenter = { segment: (text) => '
    + '(mrmatSegmenter ??= new Intl.Segmenter()).segment(text) };'))

/**
 * Fastify's server module loads node:https and node:http2 (and TLS under them) as it loads, for the servers it makes
 * only when given `https` or `http2` options, which the command line never gives: 8 ms of every start (farm-timed,
 * Node 20, 30 pairs). Each is loaded on its first use instead, whatever of it is used.
 */
const EAGER_SERVERS = "const https = require('node:https')\nconst http2 = require('node:http2')\n"
const lazyServers = rewrite('lazy-servers', /[\\/]fastify[\\/]lib[\\/]server\.js$/, EAGER_SERVERS,
  (source) => source.replace(EAGER_SERVERS, ['https', 'http2'].map((name) => `const ${name} = new Proxy({}, `
    + `{ get: (_, key) => require('node:${name}')[key] })\n`).join('')))

/**
 * The validators and serializers the server compiles at start, compiled now (scripts/precompile-schemas.mjs) and put
 * in the table of src/lib/precompiled-schemas.ts, which is empty outside this bundle.
 */
const EMPTY_TABLE = 'export const precompiled: { table?: PrecompiledTable } = {}'
const { source: table } = await precompiledTable()
const precompiledSchemas = {
  name: 'precompiled-schemas',
  setup(esbuild) {
    esbuild.onLoad({ filter: /[\\/]src[\\/]lib[\\/]precompiled-schemas\.ts$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8')
      if (!source.includes(EMPTY_TABLE)) {
        throw new Error(`precompiled-schemas: ${args.path} no longer holds ${EMPTY_TABLE}`)
      }
      const contents = source.replace(EMPTY_TABLE, `${EMPTY_TABLE.slice(0, -2)}{ table: ${table} }`)
      return { loader: 'ts', contents }
    })
  },
}

/**
 * In the server's script, import-external.ts asks the bin for the import() the script cannot make (see code-cache.ts):
 * the function is the script's wrapper's last parameter.
 */
const externalImportsThroughBin = {
  name: 'external-imports-through-bin',
  setup(esbuild) {
    esbuild.onLoad({ filter: /[\\/]src[\\/]lib[\\/]import-external\.ts$/ }, () => ({
      loader: 'js', contents: 'export const importExternal = (specifier) => mrmatImportExternal(specifier)\n',
    }))
  },
}

/** What both builds do to the packages they bundle. */
const packageRewrites = [lazyYaml, lazySerializerCompiler, lazyJwkToPem, undiciAgentOnly, yargsInPlace, lazySegmenter,
  lazyServers, precompiledSchemas]

const common = {
  absWorkingDir: root,
  bundle: true,
  platform: 'node',
  target: 'node20',
  // The sources, not dist/src: `#src/*` and `#plugins/*` resolve to TypeScript under this condition, as in tests.
  conditions: ['mrmat-source'],
  tsconfig: 'tsconfig.build.json',
  external: ['better-sqlite3', 'pg', 'pg-native', 'mysql2', '@fastify/swagger-ui', 'pino-pretty',
    '@opentelemetry/*', '@fastify/otel', 'oidc-provider'],
  // Stack traces and coverage point at src/*.ts.
  sourcemap: 'linked',
  legalComments: 'linked',
  logLevel: 'warning',
}

/** The server's script, as src/cli/code-cache.ts names it. */
const SCRIPT = 'server.cjs'

rmSync(outdir, { recursive: true, force: true })
// The server's command line: one script of everything it may load, compiled with V8's code cache by the bin (main.js,
// src/cli/bundle-main.ts) and read from that cache, made below. The script is the function Node wraps a CommonJS module
// in, with one parameter more; its "use strict" is the wrapper's, as the sources are ES modules.
await build({
  ...common,
  entryPoints: ['src/cli/command-line.ts'],
  outfile: `${outdir}/${SCRIPT}`,
  format: 'cjs',
  plugins: [...packageRewrites, externalImportsThroughBin],
  define: { 'import.meta.url': 'mrmatImportMetaUrl' },
  banner: { js: '(function (exports, require, module, __filename, __dirname, mrmatImportExternal) {"use strict";'
    + "const mrmatCreateRequire = require('node:module').createRequire;"
    + "const mrmatImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
  footer: { js: '})' },
  // Whitespace and comments left out, and lines broken at about 160 characters: a third of the script (indentation,
  // 0.8 MB, most of it), and 32 ms of a start (median of 12 alternating starts, 408 against 376 ms): less to read, copy
  // into a string, check and keep, and less source for V8 to scan as it compiles what the cache does not hold. Names
  // are kept (a stack trace names its functions), and so are lines: a crash prints the line it came from, which in a
  // script minified whole would be megabytes. The source map points at src/*.ts as before.
  minifyWhitespace: true,
  lineLimit: 160,
})
// The bin, the module that loads the script (its own entry, for the build of the cache below), and the client's
// command line, as ES modules.
await build({
  ...common,
  entryPoints: { main: 'src/cli/bundle-main.ts', 'code-cache': 'src/cli/code-cache.ts', client: 'src/client/cli.ts' },
  outdir,
  splitting: true,
  format: 'esm',
  plugins: packageRewrites,
  // Bundled CommonJS packages call require() for Node's built-ins; an ES module has none of its own.
  banner: { js: "import { createRequire as mrmatCreateRequire } from 'node:module';"
    + 'const require = mrmatCreateRequire(import.meta.url);' },
})

/**
 * V8 holds the source of every module it loads, at one byte a character when all of them are Latin-1 and at two
 * otherwise. esbuild writes code as ASCII (its default charset escapes the rest) but leaves some comments as they are:
 * a few apostrophes (U+2019) in undici's comments made the auth stack's chunk, a megabyte, cost every server 1.9 MB of
 * heap instead of 0.95. Such characters become '?', one for each UTF-16 unit so that columns and the source maps stay
 * right, once it is shown that only comments changed: without comments, both versions are the same code.
 */
const NOT_ASCII = /[\u0080-\uffff]/g
const withoutComments = async (code) => (await transform(code, {
  loader: 'js', format: 'esm', minifyWhitespace: true, legalComments: 'none', logLevel: 'error',
})).code
for (const name of readdirSync(outdir).filter((file) => /\.c?js$/.test(file))) {
  const file = `${outdir}/${name}`
  const code = await readFile(file, 'utf8')
  if (code.search(NOT_ASCII) < 0) continue
  const ascii = code.replace(NOT_ASCII, '?')
  if (await withoutComments(ascii) !== await withoutComments(code)) {
    throw new Error(`${name} holds characters beyond ASCII outside its comments`)
  }
  await writeFile(file, ascii)
}

// The script has no import() of its own (see code-cache.ts): one left in it would fail only when it ran.
if (/\bimport\(/.test(await withoutComments(await readFile(`${outdir}/${SCRIPT}`, 'utf8')))) {
  throw new Error(`${SCRIPT} holds an import(): import such a package through src/lib/import-external.ts`)
}

/**
 * V8's code cache of the script, made by a start of the built server (scripts/code-cache.mjs), for each set of node
 * options the package is started with: none (the bin, npx), and those of `npm start`, which the image's entry point
 * repeats (npm run bench checks that). V8 accepts a cache only under the V8 flags it was made with.
 */
// NODE_OPTIONS would change the options the cache is made for (npm's own, a debugger's): only the flags given count.
// The start is the default one: none of the builder's MRMAT_* settings (a database of theirs would be migrated) and
// no OpenTelemetry exporter.
const env = Object.fromEntries(Object.entries(process.env)
  .filter(([name]) => name !== 'NODE_OPTIONS' && !/^(MRMAT_|OTEL_)/.test(name)))
for (const options of [[], startNodeFlags(root)]) {
  execFileSync(process.execPath, [...options, `${root}scripts/code-cache.mjs`, outdir], { env, stdio: 'inherit' })
}
