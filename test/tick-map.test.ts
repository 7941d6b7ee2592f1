import { spawn } from 'node:child_process'
import { openSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { compiled, distFile, ROOT } from './helpers/build.js'
import { send } from './helpers/http.js'
import { childEnv } from './helpers/process.js'
import { pollUntil } from './helpers/wait.js'

// process.nextTick stays on its fast path in the server (src/lib/tick-map.ts): V8's feedback for the computed keys of
// nextTick's tick object literal must not turn megamorphic when full garbage collections run while no tick is queued.
// The fixture has V8 print that feedback (natives syntax); the states are read from the print. V8 prints to the
// process's stdout with C's stdio, which loses what a full pipe refuses: stdout is a file here.

const NODE_FLAGS = ['--allow-natives-syntax', '--expose-gc', '--import', join(ROOT, 'test/fixtures/tick-feedback.mjs')]
const SLOT = /DefineKeyedOwnPropertyInLiteral (\w+)/g
const PRINTED = /^tick-feedback: printed$/m
const TIMEOUT_MS = 30_000

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
  const run = preloaded(t, ['-e', 'setTimeout(() => {}, 200)'])
  t.equal(await run.exited, 0, 'it exits 0')
  t.match(run.read(), PRINTED)
  const seen = run.states()
  t.equal(seen.length, 4, 'the literal defines its two symbol keys and two named properties')
  t.ok(seen.includes('MEGAMORPHIC'), `this Node loses the tick object's map to the collector (${seen.join(', ')})`)
})

t.test('the server keeps nextTick\'s literal monomorphic through full collections under load', async (t) => {
  await compiled()
  const dir = t.testdir()
  const trigger = join(dir, 'check')
  const cli = preloaded(t, [distFile('src/cli/main.js'), '--host', '127.0.0.1', '--port', '0', '--instance-path',
    join(dir, 'instance')], { TICK_FEEDBACK_TRIGGER: trigger })
  const url = await pollUntil(() => /"msg":"Server listening at (http:\/\/[^"]+)"/.exec(cli.read())?.[1], TIMEOUT_MS,
    'the server listening')
  const statuses = []
  for (let i = 0; i < 50; i++) statuses.push((await send(url, '/api/greeting/v1/')).status)
  t.same(new Set(statuses), new Set([200]), 'fifty requests answered')
  writeFileSync(trigger, '')
  await pollUntil(() => PRINTED.test(cli.read()), TIMEOUT_MS, 'the feedback printed')
  cli.child.kill('SIGTERM')
  t.equal(await cli.exited, 0)
  t.same(cli.states(), ['MONOMORPHIC', 'MONOMORPHIC', 'MONOMORPHIC', 'MONOMORPHIC'])
})
