import { spawn, type ChildProcess } from 'node:child_process'
import { createServer, type AddressInfo, type Server } from 'node:net'
import type { Test } from 'tap'
import { within } from './wait.js'

const TIMEOUT_MS = 45_000

export interface ChildOptions {
  /** The child's working directory. */
  cwd?: string
  /** Variables for this run, over the test's own (see childEnv). */
  env?: Record<string, string>
  /** Whether the child's coverage counts (c8's NODE_V8_COVERAGE is passed on). On by default. */
  coverage?: boolean
}

export interface ChildResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/**
 * The test's environment for a child: without the settings of either CLI (MRMAT_*, XDG_*), without tap's and npm's
 * own, and without NODE_OPTIONS (tap's process tracking, which a child does not need; tap's spawn puts its own loader
 * back). c8's NODE_V8_COVERAGE is kept unless `coverage` is false; then it is set empty, which turns coverage off:
 * Node copies the parent's value into the environment of any child whose environment lacks the variable.
 */
export function childEnv(extra: Record<string, string> = {}, coverage = true): NodeJS.ProcessEnv {
  const dropped = /^(MRMAT_|XDG_|TAP|_TAPJS|npm_|NODE_OPTIONS$|NODE_V8_COVERAGE$)/i
  const inherited = Object.entries(process.env).filter(([name]) => !dropped.test(name))
  const coverageDirectory = coverage ? process.env.NODE_V8_COVERAGE ?? '' : ''
  return { ...Object.fromEntries(inherited), NODE_V8_COVERAGE: coverageDirectory, ...extra }
}

/** A program as a real child process, its output collected; killed at the end of the test if still running. */
export class Child {
  readonly process: ChildProcess
  readonly exited: Promise<ChildResult>
  stdout = ''
  stderr = ''

  constructor(t: Test, readonly command: string, readonly args: string[], options: ChildOptions = {}) {
    this.process = spawn(command, args, {
      cwd: options.cwd,
      env: childEnv(options.env, options.coverage),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    this.process.stdout?.setEncoding('utf8').on('data', (chunk: string) => { this.stdout += chunk })
    this.process.stderr?.setEncoding('utf8').on('data', (chunk: string) => { this.stderr += chunk })
    this.process.on('error', (error) => { this.stderr += `spawn failed: ${error.message}\n` })
    this.exited = new Promise((resolve) => {
      this.process.on('close', (code, signal) => {
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr })
      })
    })
    t.teardown(async () => {
      if (this.running) {
        this.process.kill('SIGKILL')
        await this.exited
      }
    })
  }

  get running(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null
  }

  /** What the child is, and what it printed, for a failure message. */
  describe(what: string): string {
    return `${[this.command, ...this.args].join(' ')}: ${what}\n--- stdout\n${this.stdout}--- stderr\n${this.stderr}`
  }

  async waitForExit(ms = TIMEOUT_MS): Promise<ChildResult> {
    return within(this.exited, ms, this.describe('exit'), () => this.process.kill('SIGKILL'))
  }

  /** The first complete stdout line matching the pattern, as soon as it is printed. */
  async waitForLine(pattern: RegExp, ms = TIMEOUT_MS): Promise<RegExpExecArray> {
    const stdout = this.process.stdout
    if (stdout === null) throw new Error(this.describe('has no stdout'))
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
        if (!this.running) reject(new Error(this.describe(`exited before printing a line matching ${String(pattern)}`)))
      }
      stdout.on('data', listener)
      this.process.on('close', listener)
      listener()
    })
    try {
      return await within(found, ms, this.describe(`a line matching ${String(pattern)}`))
    } finally {
      if (listener !== undefined) {
        stdout.off('data', listener)
        this.process.off('close', listener)
      }
    }
  }

  /** SIGTERM, as a process manager stops a server, then the exit. */
  async stop(ms = TIMEOUT_MS): Promise<ChildResult> {
    this.process.kill('SIGTERM')
    return this.waitForExit(ms)
  }
}

/** The JSON log lines (pino) of some output; other lines are left out. */
export function logLines(text: string): Record<string, unknown>[] {
  return text.split('\n').flatMap((line): Record<string, unknown>[] => {
    try {
      const parsed = JSON.parse(line) as unknown
      return typeof parsed === 'object' && parsed !== null ? [parsed as Record<string, unknown>] : []
    } catch {
      return []
    }
  })
}

async function listenOn(port = 0): Promise<Server> {
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
  const servers = await Promise.all(Array.from({ length: count }, async () => listenOn()))
  const ports = servers.map((server) => (server.address() as AddressInfo).port)
  await Promise.all(servers.map(close))
  return ports
}

/** A port on 127.0.0.1 held by someone else until the end of the test. */
export async function occupiedPort(t: Test): Promise<number> {
  const server = await listenOn()
  t.teardown(async () => close(server))
  return (server.address() as AddressInfo).port
}
