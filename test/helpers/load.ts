import { join } from 'node:path'
import type { Test } from 'tap'
import { ROOT } from './build.js'
import { Child } from './process.js'

/** What autocannon reports at its end (its --json output), the figures the reliability tests print. */
export interface LoadResult {
  requests: { total: number, average: number }
  latency: { p50: number, p99: number, max: number }
  errors: number
  timeouts: number
  non2xx: number
  '2xx': number
  statusCodeStats?: Record<string, { count: number }>
}

/**
 * autocannon as a process of its own, so that the load it makes does not slow the test's own clients: `connections`
 * kept-alive connections sending as fast as the server answers for `seconds`, or at most `rate` requests a second
 * per connection or `overallRate` in all.
 */
export class Load {
  readonly child: Child

  constructor(t: Test, url: string, options: { connections: number, seconds: number, rate?: number,
    overallRate?: number, method?: string, headers?: Record<string, string>, body?: string }) {
    const args = [join(ROOT, 'node_modules/autocannon/autocannon.js'), '--json', '--connections',
      String(options.connections), '--duration', String(options.seconds)]
    if (options.rate !== undefined) args.push('--connectionRate', String(options.rate))
    if (options.overallRate !== undefined) args.push('--overallRate', String(options.overallRate))
    if (options.method !== undefined) args.push('--method', options.method)
    for (const [name, value] of Object.entries(options.headers ?? {})) args.push('--headers', `${name}=${value}`)
    if (options.body !== undefined) args.push('--body', options.body)
    args.push(url)
    this.child = new Child(t, process.execPath, args, { coverage: false })
  }

  /** The figures, once it has ended. */
  async result(ms = 120_000): Promise<LoadResult> {
    const { stdout, stderr, code } = await this.child.waitForExit(ms)
    try {
      return JSON.parse(stdout) as LoadResult
    } catch {
      throw new Error(`autocannon exited with ${String(code)} without figures: ${stderr}`)
    }
  }

  /** Stops it early (it prints its figures on SIGINT too). */
  async stop(): Promise<LoadResult> {
    this.child.process.kill('SIGINT')
    return this.result()
  }
}
