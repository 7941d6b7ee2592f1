import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { childEnv } from './process.js'
import { pollUntil } from './wait.js'

/*
 * The CLIs' child processes run the compiled package, `npm run build`'s dist/: a child of it starts in a third of the
 * time the TypeScript sources take through a loader. dist/ is built once per change of the sources, by whichever test
 * file needs it first while the others wait; c8 maps the children's coverage back to the sources (sourceMap is on).
 */

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const DIST = join(ROOT, 'dist')
/** The fingerprint of the sources dist/ was built from. */
const STAMP = join(DIST, '.test-build')
const LOCK = join(ROOT, '.tap', 'dist-build.lock')
const INPUTS = ['src', 'plugins', 'package.json', 'tsconfig.json', 'tsconfig.build.json', 'scripts/stamp-version.mjs']
const BUILD_TIMEOUT_MS = 120_000

function filesOf(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path]
  return readdirSync(path).sort().flatMap((entry) => filesOf(join(path, entry)))
}

/** A hash of every input's path and content: a build from other sources has another. */
function fingerprint(): string {
  const hash = createHash('sha256')
  for (const file of INPUTS.flatMap((input) => filesOf(join(ROOT, input)))) {
    hash.update(relative(ROOT, file)).update('\0').update(readFileSync(file)).update('\0')
  }
  return hash.digest('hex')
}

function stamped(wanted: string): boolean {
  try {
    return readFileSync(STAMP, 'utf8') === wanted
  } catch {
    return false
  }
}

/** Takes the lock (an atomic mkdir), or returns false while another holds it. A lock left by a crash expires. */
function tryLock(): boolean {
  mkdirSync(join(LOCK, '..'), { recursive: true })
  try {
    mkdirSync(LOCK)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    if (Date.now() - statSync(LOCK).mtimeMs > BUILD_TIMEOUT_MS) rmSync(LOCK, { recursive: true, force: true })
    return false
  }
}

async function node(args: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    execFile(process.execPath, args, {
      cwd: ROOT, env: childEnv({}, false), timeout: BUILD_TIMEOUT_MS,
    }, (error, stdout, stderr) => {
      if (error === null) resolve()
      else reject(new Error(`building dist/ failed: ${error.message}\n${stdout}${stderr}`))
    })
  })
}

/** What `npm run build` does: the compile, then the version stamp (MRMAT_VERSION is not passed on: 0.0.0.dev0). */
async function tsc(): Promise<void> {
  await node([join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'])
  await node([join(ROOT, 'scripts', 'stamp-version.mjs')])
}

async function build(): Promise<void> {
  const wanted = fingerprint()
  const state = await pollUntil(
    () => (stamped(wanted) ? 'built' : tryLock() ? 'locked' : undefined),
    BUILD_TIMEOUT_MS,
    'building dist/ (or the lock on it)',
    200,
  )
  if (state === 'built') return
  try {
    if (stamped(wanted)) return
    // From scratch, as prepack does: nothing of an older build lingers.
    rmSync(DIST, { recursive: true, force: true })
    await tsc()
    writeFileSync(STAMP, wanted)
  } finally {
    rmSync(LOCK, { recursive: true, force: true })
  }
}

let built: Promise<void> | undefined

/** Resolves once dist/ holds a build of the current sources. */
export async function compiled(): Promise<void> {
  built ??= build()
  return built
}

/** A file of the compiled package, e.g. `dist/src/cli/main.js`. */
export function distFile(path: string): string {
  return join(ROOT, 'dist', path)
}
