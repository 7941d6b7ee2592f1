// What both benchmarks (scripts/bench.ts, scripts/bench-pairs.ts) need of a server process: the CPU time it has used,
// and its stop. The node options users start it with are in ../start-options.mjs.
import type { ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'

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
