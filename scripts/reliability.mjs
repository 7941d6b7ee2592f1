// npm run test:reliability [-- --full]: the tests under test/reliability/, one file at a time (each loads the machine
// on purpose, and two at once would measure each other). Short mode by default, as CI runs it: fewer rounds and
// seconds, the same assertions. --full runs the counts and durations the README's Reliability figures come from.
// Other arguments go to tap (a file name, say, to run one).
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'

const args = process.argv.slice(2)
const full = args.includes('--full')
const rest = args.filter((arg) => arg !== '--full')
const named = rest.filter((arg) => arg.endsWith('.test.ts'))
const files = named.length > 0 ? named
  : readdirSync('test/reliability').filter((name) => name.endsWith('.test.ts')).sort()
    .map((name) => join('test/reliability', name))
const options = rest.filter((arg) => !arg.endsWith('.test.ts'))

console.log(`reliability suite, ${full ? 'full' : 'short'} mode: ${files.join(' ')}`)
const result = spawnSync('npx', ['tap', '--jobs', '1', '--timeout', full ? '900' : '300', ...options, ...files], {
  stdio: 'inherit',
  env: { ...process.env, MRMAT_RELIABILITY: full ? 'full' : 'short' },
})
process.exit(result.status ?? 1)
