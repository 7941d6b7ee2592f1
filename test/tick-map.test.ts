import { spawn } from 'node:child_process'
import { openSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import t, { type Test } from 'tap'
import { compiled, distFile, ROOT } from './helpers/build.js'
import { childEnv } from './helpers/process.js'

// process.nextTick stays on its fast path (src/lib/tick-map.ts): V8's feedback for the computed keys of nextTick's tick
// object literal must not turn megamorphic when full garbage collections run while no tick is queued. (The server
// itself, started with this preload, was found megamorphic twice in CI runs under load even so: something before or
// besides those collections decides it there; see the README's Performance section.)
// The fixture has V8 print that feedback (natives syntax); the states are read from the print. V8 prints to the
// process's stdout with C's stdio, which loses what a full pipe refuses: stdout is a file here.

const NODE_FLAGS = ['--allow-natives-syntax', '--expose-gc', '--import', join(ROOT, 'test/fixtures/tick-feedback.mjs')]
const SLOT = /DefineKeyedOwnPropertyInLiteral (\w+)/g
const PRINTED = /^tick-feedback: printed$/m

/** A node process with the fixture preloaded, its stdout and stderr in a file; read() is what it wrote so far. */
function preloaded(t: Test, args: string[], env: Record<string, string> = {}) {
  const output = join(t.testdir(), 'output')
  const fd = openSync(output, 'w')
  const child = spawn(process.execPath, [...NODE_FLAGS, ...args],
    { env: childEnv(env, false), stdio: ['ignore', fd, fd] })
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  const read = (): string => readFileSync(output, 'utf8')
  const states = (): string[] => [...read().matchAll(SLOT)].map((match) => match[1] ?? '')
  return { child, exited, read, states }
}

t.test('the premise: without a tick object held, full collections leave nextTick\'s literal megamorphic', async (t) => {
  // A plain Node process, nothing of this package: what the server guards against.
  const run = preloaded(t, ['-e', 'setTimeout(() => { globalThis.checkTickFeedback() }, 10)'])
  t.equal(await run.exited, 0, 'it exits 0')
  t.match(run.read(), PRINTED)
  const seen = run.states()
  t.equal(seen.length, 4, 'the literal defines its two symbol keys and two named properties')
  t.ok(seen.includes('MEGAMORPHIC'), `this Node loses the tick object's map to the collector (${seen.join(', ')})`)
})

t.test('keepTickObjectMapAlive keeps nextTick\'s literal monomorphic through full collections', async (t) => {
  await compiled()
  // The same process as the premise's, holding a tick object first thing, as the server's bin does.
  const module = JSON.stringify(pathToFileURL(distFile('src/lib/tick-map.js')).href)
  const script = `import { keepTickObjectMapAlive } from ${module}
keepTickObjectMapAlive()
setTimeout(() => { globalThis.checkTickFeedback() }, 10)`
  const run = preloaded(t, ['--input-type=module', '-e', script])
  t.equal(await run.exited, 0, 'it exits 0')
  t.match(run.read(), PRINTED)
  t.same(run.states(), ['MONOMORPHIC', 'MONOMORPHIC', 'MONOMORPHIC', 'MONOMORPHIC'])
})
