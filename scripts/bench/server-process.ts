// What both benchmarks (scripts/bench.ts, scripts/bench-pairs.ts) need of a server process: the node options users
// start it with, the CPU time it has used, and its stop.
import type { ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * The node options of package.json's start script (`node [options] dist/cli/main.js`), which the image's entry point
 * gives too: V8's young generation and the old one's growth bounded.
 */
export function startNodeFlags(root: string): string[] {
  const start = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: { start: string } })
    .scripts.start.split(' ')
  if (start[0] !== 'node' || start.at(-1) !== 'dist/cli/main.js') {
    throw new Error(`package.json's start script is not "node [options] dist/cli/main.js": ${start.join(' ')}`)
  }
  return start.slice(1, -1)
}

/** CPU seconds (user and system) the processes have used so far (Linux: /proc); a process gone counts nothing. */
export function cpuSeconds(pids: number[]): number {
  let ticks = 0
  for (const pid of pids) {
    try {
      const fields = readFileSync(`/proc/${String(pid)}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
      ticks += Number(fields[11]) + Number(fields[12])
    } catch { /* gone */ }
  }
  return ticks / 100
}

/** SIGTERM, and the exit awaited; nothing if the child has exited already. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  await exited
}
