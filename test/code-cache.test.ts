import { copyFileSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import t, { type Test } from 'tap'
import { compiled, distFile } from './helpers/build.js'
import { Child } from './helpers/process.js'

// The built bin compiles the server's script with V8's code cache (src/cli/code-cache.ts). Here a small script of the
// same shape goes through the same functions, each step a node process of its own, as a start is: the cache is made,
// then used by a start with the same node options, and every start that does not fit it still runs the script's own
// code. NODE_DEBUG=mrmat-code-cache says which it was.

const TIMEOUT_MS = 30_000
// A wrapper as scripts/bundle.mjs writes it; the function names a package it imports through the bin, as the server's
// script imports Swagger UI or oidc-provider.
const SCRIPT = '(function (exports, require, module, __filename, __dirname, mrmatImportExternal) {"use strict";'
  + 'exports.answer = () => "forty-two";'
  + 'exports.imported = async () => typeof (await mrmatImportExternal("node:os")).cpus;'
  + '})'

/** The driver: compiles and runs the script of a folder, or makes its cache (make), or names its cache file (where). */
const DRIVER = `import { writeFileSync } from 'node:fs'
const { cacheFile, cacheOf, compileScript, runScript } = await import(${
  JSON.stringify(pathToFileURL(distFile('src/cli/code-cache.js')).href)})
const [dir, mode] = process.argv.slice(2)
if (mode === 'where') {
  process.stdout.write(cacheFile(dir))
} else {
  const script = compileScript(dir, mode !== 'make')
  const exports = runScript(script, dir, async (specifier) => import(specifier))
  if (mode === 'make') writeFileSync(cacheFile(dir), cacheOf(script, dir))
  process.stdout.write(JSON.stringify({ answer: exports.answer(), imported: await exports.imported() }))
}
`

/** A folder with the script and the driver. */
const folder = (t: Test): string => t.testdir({ 'server.cjs': SCRIPT, 'driver.mjs': DRIVER })

async function start(t: Test, options: string[], dir: string,
  mode = 'run'): Promise<{ stdout: string, debug: string }> {
  const result = await new Child(t, process.execPath, [...options, join(dir, 'driver.mjs'), dir, mode],
    { env: { NODE_DEBUG: 'mrmat-code-cache' } }).waitForExit(TIMEOUT_MS)
  t.equal(result.code, 0, `node ${options.join(' ')} ${mode} exits 0`, { stderr: result.stderr })
  return { stdout: result.stdout, debug: result.stderr }
}

const ANSWER = JSON.stringify({ answer: 'forty-two', imported: 'function' })

t.before(async () => { await compiled() })

t.test('a start with the node options the cache was made for uses it; any other compiles the script', async (t) => {
  const dir = folder(t)
  const made = await start(t, ['--max-semi-space-size=8'], dir, 'make')
  t.equal(made.stdout, ANSWER, 'the start that makes the cache runs the script')
  const cached = await start(t, ['--max-semi-space-size=8'], dir)
  t.match(cached.debug, /cache \S+ used/, 'the same options: the cache is used')
  t.equal(cached.stdout, ANSWER, 'and the script answers, its import() made by the bin')
  const profiled = await start(t, ['--max-semi-space-size=8', '--enable-source-maps'], dir)
  t.match(profiled.debug, /cache \S+ used/, 'an option V8 never sees (source maps) keeps it')
  const other = await start(t, [], dir)
  t.match(other.debug, /no cache for these node options/, 'no options: no cache of its own')
  t.equal(other.stdout, ANSWER, 'compiled, the same answer')
})

t.test('a cache V8 refuses (made under other V8 flags) costs the start its compile, nothing else', async (t) => {
  const dir = folder(t)
  await start(t, ['--max-semi-space-size=8'], dir, 'make')
  const made = (await start(t, ['--max-semi-space-size=8'], dir, 'where')).stdout
  const elsewhere = (await start(t, ['--max-semi-space-size=4'], dir, 'where')).stdout
  t.not(elsewhere, made, 'another V8 flag, another cache file')
  copyFileSync(made, elsewhere)
  const refused = await start(t, ['--max-semi-space-size=4'], dir)
  t.match(refused.debug, /V8 rejected the cache/, 'V8 checks its flags and refuses it')
  t.equal(refused.stdout, ANSWER, 'the script compiled and answered')
})

t.test('a script changed after its cache was made runs as changed, even at the same length', async (t) => {
  const dir = folder(t)
  await start(t, [], dir, 'make')
  // V8 itself compares a cache with its source by length alone: this change would pass.
  const changed = SCRIPT.replace('forty-two', 'forty-six')
  t.equal(changed.length, SCRIPT.length)
  writeFileSync(join(dir, 'server.cjs'), changed)
  const run = await start(t, [], dir)
  t.match(run.debug, /was made for another script: compiled instead/, 'the cache is not used')
  t.equal((JSON.parse(run.stdout) as { answer: string }).answer, 'forty-six', 'the script as it is now ran')
  t.equal(readFileSync(join(dir, 'server.cjs'), 'latin1'), changed)
})
