// The two command lines (server and client) as bundles in dist/cli/, for `npm run build`.
//
// Why: Node 20 spends most of a cold start finding, reading and compiling modules, one file at a time: the server
// loads about 900 of them (TypeBox alone is 247 files, drizzle 113, ajv 86). Bundled into a few chunks, the start
// takes about a third less CPU (measured from spawn to the first 200 on /healthz/). The library (dist/src,
// dist/plugins) stays as tsc writes it: host apps bundle it themselves if they wish.
//
// What stays outside, loaded from node_modules at run time: native addons and the drivers (better-sqlite3, pg,
// mysql2), packages that read files next to their own code (@fastify/swagger-ui's assets, yargs's locales) and
// pino-pretty (loaded only for --log-format pretty), oidc-provider (an optional dependency, loaded only by the dev
// command: the image leaves it out), and OpenTelemetry (loaded only when an OTLP exporter is configured): its API
// keeps one global registration that the SDK, @fastify/otel and this code must share, so it is loaded from
// node_modules as one copy, never bundled beside another. yaml too, and only when first called (lazyYaml below):
// @fastify/swagger loads it at start to write YAML documents, which the server never asks for. Dynamic imports stay
// dynamic (splitting): a server without PostgreSQL does not load the PostgreSQL chunk, and one without an identity
// provider not the auth stack.
import { rmSync } from 'node:fs'
import { build } from 'esbuild'

const root = new URL('..', import.meta.url).pathname
const outdir = `${root}dist/cli`

/**
 * `yaml`, as a bundled package imports it, is a module of a few lines (no file of its own: the image and the package
 * test copy only the build scripts) that requires the real one from node_modules on its first call.
 */
const lazyYaml = {
  name: 'lazy-yaml',
  setup(esbuild) {
    esbuild.onResolve({ filter: /^yaml$/ }, (args) => (args.namespace === 'lazy-yaml'
      ? { path: 'yaml', external: true }
      : { path: 'yaml', namespace: 'lazy-yaml' }))
    esbuild.onLoad({ filter: /.*/, namespace: 'lazy-yaml' }, () => ({
      loader: 'js',
      contents: "exports.stringify = (...args) => require('yaml').stringify(...args)\n"
        + "exports.parse = (...args) => require('yaml').parse(...args)\n",
    }))
  },
}

rmSync(outdir, { recursive: true, force: true })
await build({
  absWorkingDir: root,
  entryPoints: { main: 'src/cli/main.ts', client: 'src/client/cli.ts' },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // The sources, not dist/src: `#src/*` and `#plugins/*` resolve to TypeScript under this condition, as in tests.
  conditions: ['mrmat-source'],
  tsconfig: 'tsconfig.build.json',
  external: ['better-sqlite3', 'pg', 'pg-native', 'mysql2', '@fastify/swagger-ui', 'yargs', 'yargs/*', 'pino-pretty',
    '@opentelemetry/*', '@fastify/otel', 'oidc-provider'],
  plugins: [lazyYaml],
  // Bundled CommonJS packages call require() for Node's built-ins; an ES module has none of its own.
  banner: { js: "import { createRequire as mrmatCreateRequire } from 'node:module';"
    + 'const require = mrmatCreateRequire(import.meta.url);' },
  // Stack traces and coverage point at src/*.ts.
  sourcemap: 'linked',
  legalComments: 'linked',
  logLevel: 'warning',
})
