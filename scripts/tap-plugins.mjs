// `npm ci` runs this (the package's `prepare`): tap's Test class built with the plugins package.json `tap.plugin`
// names, from the packages the lockfile installed.
//
// Why: tap builds it on its first run when the configured plugins differ from its defaults, and that build asks the
// registry for each named plugin's newest version and installs a second copy into .tap/plugins with a caret range, a
// version the lockfile never pinned. Built here, tap finds its build matching and neither asks nor installs anything:
// `npm test` after `npm ci` needs no network. test/install.test.ts checks it.
//
// Nothing to build without tap (npm ci --omit=dev), without the tests (the image's build stage), or when npm runs
// prepare for `npm pack` (the tests' node_modules may be in use then).
import { spawnSync } from 'node:child_process'
import { existsSync, rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const generator = `${root}node_modules/@tapjs/test/dist/esm/build.mjs`
const packing = ['pack', 'publish'].includes(process.env.npm_command ?? '')
if (packing || !existsSync(generator) || !existsSync(`${root}test`)) process.exit(0)

process.chdir(root)
const { TapConfig } = await import('@tapjs/config')
const config = await TapConfig.load()
const plugins = config.pluginList
for (const plugin of plugins) {
  if (!existsSync(`${root}node_modules/${plugin}/package.json`)) {
    console.error(`tap plugin ${plugin} is not installed: add it to devDependencies (exact) and run npm install`)
    process.exit(1)
  }
}
// A build left by an older checkout's first `tap` run holds the registry's copies: start afresh.
rmSync(`${root}.tap/plugins`, { recursive: true, force: true })
const result = spawnSync(process.execPath, [generator, ...plugins], { cwd: root, stdio: 'inherit' })
process.exit(result.status ?? 1)
