// The node options users start the server with: those of package.json's start script, which the image's entry point
// repeats (npm run bench checks that). The build makes the server's code cache for them (bundle.mjs), and the
// benchmarks start the server with them (bench.ts, bench-pairs.ts).
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * The options of package.json's start script, `node [options] dist/cli/main.js`: V8's young generation and the old
 * one's growth bounded. Throws when the script has another shape, which would leave the cache made for the wrong
 * options and the benchmarks measuring another server than users start.
 */
export function startNodeFlags(root) {
  const start = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts.start.split(' ')
  if (start[0] !== 'node' || start.at(-1) !== 'dist/cli/main.js') {
    throw new Error(`package.json's start script is not "node [options] dist/cli/main.js": ${start.join(' ')}`)
  }
  return start.slice(1, -1)
}
