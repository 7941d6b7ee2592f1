import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { debuglog } from 'node:util'
import { Script } from 'node:vm'

/**
 * The server's command line, as the built package runs it: one script (dist/cli/server.cjs, written by
 * scripts/bundle.mjs) compiled with V8's code cache, the bytecode V8 compiled for it in a start made as the package was
 * built. Node 20 caches no compiled code for ES modules, and compiling the command line's code was the largest part of
 * a start; from the cache it is read instead (start to the first 200: 416 ms against 484, see the README).
 *
 * The script evaluates to a function of (exports, require, module, __filename, __dirname, importExternal): how Node
 * wraps a CommonJS module, and the import() the script cannot make itself (src/lib/import-external.ts).
 *
 * V8 accepts a cache only from the same V8 and the same V8 flags, and checks the source only by its length: the cache
 * file holds the SHA-256 of the script it was made for, compared first, and one is made for each set of node options
 * the package starts with (none, and those of `npm start` and the image). Any other start compiles the script as
 * before: a cache that does not fit changes the speed of a start, never what runs. NODE_DEBUG=mrmat-code-cache says
 * which it was.
 */
export const SCRIPT = 'server.cjs'

export type ScriptExports = typeof import('./command-line.js')

type Wrapped = (exports: object, require: NodeJS.Require, module: { exports: object }, filename: string,
  dirname: string, importExternal: (specifier: string) => Promise<unknown>) => void

const HASH_BYTES = 32

// Node's own options that V8 never sees, so they leave the cache valid: profiling, source maps, the inspector.
const NODE_ONLY = /^--(cpu-prof|heap-prof|enable-source-maps|inspect)/

const debug = debuglog('mrmat-code-cache')

/** The cache file for the node options this process runs with (its flags and NODE_OPTIONS). */
export function cacheFile(dir: string): string {
  const options = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)]
    .filter((option) => option !== '' && !NODE_ONLY.test(option))
  const key = createHash('sha256').update(options.join(' ')).digest('hex').slice(0, 16)
  return join(dir, `${SCRIPT}.${key}.v8cache`)
}

function readCache(file: string, sourceHash: Buffer): Buffer | undefined {
  let cache: Buffer
  try {
    cache = readFileSync(file)
  } catch {
    debug('no cache for these node options (%s)', file)
    return undefined
  }
  if (!cache.subarray(0, HASH_BYTES).equals(sourceHash)) {
    debug('the cache %s was made for another script: compiled instead', file)
    return undefined
  }
  return cache.subarray(HASH_BYTES)
}

/** The script of `dir`, compiled with its cache when one fits. */
export function compileScript(dir: string, useCache = true): Script {
  const filename = join(dir, SCRIPT)
  const bytes = readFileSync(filename)
  const file = cacheFile(dir)
  const cachedData = useCache ? readCache(file, createHash('sha256').update(bytes).digest()) : undefined
  // ASCII (the build checks): latin1 is its exact text, read faster than UTF-8 and held at a byte a character.
  const script = new Script(bytes.toString('latin1'), { filename, cachedData })
  if (cachedData !== undefined) {
    debug(script.cachedDataRejected === true ? 'V8 rejected the cache %s: compiled instead' : 'cache %s used', file)
  }
  return script
}

/** Runs a compiled script: what its command line exports. */
export function runScript(script: Script, dir: string,
  importExternal: (specifier: string) => Promise<unknown>): ScriptExports {
  const filename = join(dir, SCRIPT)
  const module = { exports: {} }
  ;(script.runInThisContext() as Wrapped)(module.exports, createRequire(filename), module, filename, dir,
    importExternal)
  return module.exports as ScriptExports
}

/** What a cache file holds for this script: the script's SHA-256, then V8's cache of what it has compiled so far. */
export function cacheOf(script: Script, dir: string): Buffer {
  const hash = createHash('sha256').update(readFileSync(join(dir, SCRIPT))).digest()
  return Buffer.concat([hash, script.createCachedData()])
}
