import { spawn, type ChildProcess } from 'node:child_process'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'

interface Tap {
  teardown(fn: () => unknown): void
}

export const CLI_NAME = 'mrmat-ts-api-fastify'
export const CLI_PATH = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url))
export const USAGE_HINT = `Run '${CLI_NAME} --help' for usage.`
// The test's own node arguments (tap's tsx loader): the child then compiles the sources exactly as the
// test process does, which c8 needs to merge their coverage. By URL, so any working directory will do.
const NODE_ARGS = process.execArgv.length > 0 ? process.execArgv : ['--import', import.meta.resolve('tsx')]
const TIMEOUT_MS = 45_000
/** Each child spends a second or two of CPU loading the app: more of them at once than cores only queue. */
const PARALLEL = Math.max(2, availableParallelism())

export interface CliOptions {
  /** The child's working directory: relative paths and the default var/instance land here. */
  cwd: string
  /** MRMAT_* variables for this run; the ones of the test process itself are not passed on. */
  env?: Record<string, string>
}

export interface CliResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** The parent's environment (tap's NODE_OPTIONS carries coverage into the child) without its MRMAT_* variables. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const inherited = Object.entries(process.env).filter(([name]) => !name.startsWith('MRMAT_'))
  return { ...Object.fromEntries(inherited), ...extra }
}

async function within<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(onTimeout()) }, ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** The CLI as a real child process, its output collected; killed at the end of the test if still running. */
export class CliProcess {
  readonly child: ChildProcess
  readonly exited: Promise<CliResult>
  stdout = ''
  stderr = ''

  constructor(t: Tap, readonly args: string[], options: CliOptions) {
    this.child = spawn(process.execPath, [...NODE_ARGS, CLI_PATH, ...args], {
      cwd: options.cwd,
      env: childEnv(options.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    this.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => { this.stdout += chunk })
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { this.stderr += chunk })
    this.child.on('error', (error) => { this.stderr += `spawn failed: ${error.message}\n` })
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr })
      })
    })
    t.teardown(async () => {
      if (this.child.exitCode === null && this.child.signalCode === null) {
        this.child.kill('SIGKILL')
        await this.exited
      }
    })
  }

  private failure(what: string): Error {
    return new Error(`${CLI_NAME} ${this.args.join(' ')}: ${what}\n--- stdout\n${this.stdout}--- stderr\n${this.stderr}`)
  }

  async waitForExit(ms = TIMEOUT_MS): Promise<CliResult> {
    return within(this.exited, ms, () => {
      this.child.kill('SIGKILL')
      return this.failure(`did not exit within ${ms} ms`)
    })
  }

  /** The first complete stdout line matching the pattern, as soon as it is printed. */
  async waitForLine(pattern: RegExp, ms = TIMEOUT_MS): Promise<RegExpExecArray> {
    const stdout = this.child.stdout
    if (stdout === null) throw this.failure('has no stdout')
    let listener: (() => void) | undefined
    const found = new Promise<RegExpExecArray>((resolve, reject) => {
      listener = () => {
        for (const line of this.stdout.split('\n').slice(0, -1)) {
          const match = pattern.exec(line)
          if (match !== null) {
            resolve(match)
            return
          }
        }
        if (this.child.exitCode !== null || this.child.signalCode !== null) {
          reject(this.failure(`exited before printing a line matching /${pattern.source}/`))
        }
      }
      stdout.on('data', listener)
      this.child.on('close', listener)
      listener()
    })
    try {
      return await within(found, ms, () => this.failure(`printed no line matching /${pattern.source}/ within ${ms} ms`))
    } finally {
      if (listener !== undefined) {
        stdout.off('data', listener)
        this.child.off('close', listener)
      }
    }
  }

  /** SIGTERM, as a process manager stops the server, then the exit. */
  async stop(ms = TIMEOUT_MS): Promise<CliResult> {
    this.child.kill('SIGTERM')
    return this.waitForExit(ms)
  }
}

/** fn over the items, a few at a time, the results in order. */
export async function inParallel<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = []
  let next = 0
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) results[i] = await fn(items[i] as T)
  }
  await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, worker))
  return results
}

/** Runs the CLI to its end. */
export async function runCli(t: Tap, args: string[], options: CliOptions): Promise<CliResult> {
  return new CliProcess(t, args, options).waitForExit()
}

export interface RunningCli {
  cli: CliProcess
  /** e.g. http://127.0.0.1:41234, from the "Server listening at" log line. */
  url: string
}

/** Starts the server and waits until it says it is listening. */
export async function startCli(t: Tap, args: string[], options: CliOptions): Promise<RunningCli> {
  const cli = new CliProcess(t, args, options)
  const [, url = ''] = await cli.waitForLine(/"msg":"Server listening at (http:\/\/[^"]+)"/)
  return { cli, url }
}

/** The JSON log lines (pino) of a run; other lines are left out. */
export function logLines(stdout: string): Record<string, unknown>[] {
  return stdout.split('\n').flatMap((line): Record<string, unknown>[] => {
    try {
      const parsed = JSON.parse(line) as unknown
      return typeof parsed === 'object' && parsed !== null ? [parsed as Record<string, unknown>] : []
    } catch {
      return []
    }
  })
}

async function listen(port = 0): Promise<Server> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject).listen(port, '127.0.0.1', resolve)
  })
  return server
}

async function close(server: Server): Promise<void> {
  await new Promise<void>((resolve) => server.close(() => { resolve() }))
}

/** Distinct ports that were free a moment ago on 127.0.0.1. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: count }, async () => listen()))
  const ports = servers.map((server) => (server.address() as AddressInfo).port)
  await Promise.all(servers.map(close))
  return ports
}

/** A port on 127.0.0.1 held by someone else until the end of the test. */
export async function occupiedPort(t: Tap): Promise<number> {
  const server = await listen()
  t.teardown(async () => close(server))
  return (server.address() as AddressInfo).port
}
