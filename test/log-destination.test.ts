import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { compiled, distFile } from './helpers/build.js'
import { Child } from './helpers/process.js'

// The server's JSON log lines are written asynchronously, batched a turn of the event loop at a time: nothing logged
// may be lost when the process ends right after, whether it exits, throws or is told to stop by a signal.

const LINES = 2000

/** A process that logs LINES lines through the server's logger and then ends the way `ending` says. */
function program(ending: string): string {
  return `
import { createLogger } from ${JSON.stringify(distFile('src/cli/logger.js'))}
const log = await createLogger({ workers: 1, logLevel: 'info', logFormat: 'json' })
for (let i = 0; i < ${LINES}; i++) log.info({ i, padding: 'x'.repeat(200) }, 'line')
${ending}
`
}

const endings: Record<string, string> = {
  'process.exit(3) straight after': 'process.exit(3)',
  'an uncaught exception straight after': 'throw new Error("boom")',
  'a fatal line and exit(1), as the server ends after an uncaught error': 'log.fatal("fatal"); process.exit(1)',
}

for (const [what, ending] of Object.entries(endings)) {
  t.test(`every line reaches stdout: ${what}`, async (t) => {
    await compiled()
    const file = join(t.testdir(), 'logs.mjs')
    writeFileSync(file, program(ending))
    const result = await new Child(t, process.execPath, [file], { coverage: true }).waitForExit()
    const lines = result.stdout.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as
      { msg: string, i?: number })
    const numbered = lines.filter((line) => line.msg === 'line').map((line) => line.i)
    t.equal(numbered.length, LINES, `all ${String(LINES)} lines`)
    t.same(numbered, Array.from({ length: LINES }, (_, i) => i), 'in order, each once')
    t.not(result.code, 0, 'the process did end with its failure')
  })
}
