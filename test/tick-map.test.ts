import { spawn } from 'node:child_process'
import { openSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import t, { type Test } from 'tap'
import { startTestProvider } from './fixtures/oidc-provider.js'
import { compiled, distFile, ROOT } from './helpers/build.js'
import { folder } from './helpers/folder.js'
import { send } from './helpers/http.js'
import { childEnv } from './helpers/process.js'
import { pollUntil } from './helpers/wait.js'

// process.nextTick stays on its fast path (src/lib/tick-map.ts): V8's feedback for the computed keys of nextTick's tick
// object literal must not turn megamorphic when full garbage collections run while no tick is queued.
// The fixture has V8 print that feedback (natives syntax); the states are read from the print. V8 prints to the
// process's stdout with C's stdio, which loses what a full pipe refuses: stdout is a file here.
// The processes run without coverage: starting V8's precise coverage (c8's NODE_V8_COVERAGE) collects all garbage
// during Node's bootstrap, before any script of the process can hold a tick object, and so decides the outcome.

const NODE_FLAGS = ['--allow-natives-syntax', '--expose-gc', '--import', join(ROOT, 'test/fixtures/tick-feedback.mjs')]
const SLOT = /DefineKeyedOwnPropertyInLiteral (\w+)/g
const PRINTED = /^tick-feedback: printed$/m
const LISTENING = /"msg":"Server listening at (http:\/\/[^"]+)"/
const TIMEOUT_MS = 30_000
const MONOMORPHIC = ['MONOMORPHIC', 'MONOMORPHIC', 'MONOMORPHIC', 'MONOMORPHIC']

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
  t.same(run.states(), MONOMORPHIC)
})

t.test('the server its bin starts keeps nextTick\'s literal monomorphic through full collections', async (t) => {
  await compiled()
  // With an identity provider and a bearer token: the configuration whose processes most often came up slow before.
  const provider = await startTestProvider(t)
  const dir = folder(t)
  const trigger = join(dir, 'check-now')
  const server = preloaded(t, [distFile('src/cli/main.js'), '--host', '127.0.0.1', '--port', '0', '--instance-path',
    join(dir, 'instance'), '--issuer', provider.issuer, '--audience', provider.audience],
  { TICK_FEEDBACK_TRIGGER: trigger })
  const url = await pollUntil(() => LISTENING.exec(server.read())?.[1], TIMEOUT_MS, 'the server listening')
  const token = await provider.jwt()
  const statuses = new Set<number>()
  for (let i = 0; i < 50; i++) statuses.add((await send(url, '/api/greeting/v3/', { token })).status)
  t.same([...statuses], [200], 'fifty authenticated greetings answered')
  writeFileSync(trigger, '')
  await pollUntil(() => PRINTED.test(server.read()), TIMEOUT_MS, 'the feedback printed')
  server.child.kill('SIGTERM')
  t.equal(await server.exited, 0, 'it stops cleanly')
  t.same(server.states(), MONOMORPHIC)
})
