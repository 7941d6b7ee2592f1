import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { startApp } from './app.js'
import { settingsFromSecrets, REQUEST_TIMEOUT_MS } from './auth.js'
import { freshSqlite, openTestDatabase, type TestDatabase } from './databases.js'
import { approveDevice, startTestProvider, type TestProvider, type TestProviderOptions } from './oidc-provider.js'
import { run } from '#src/client/cli.js'
import { cacheFile, writeCache, type CachedTokens } from '#src/client/token-cache.js'

export const CLIENT_NAME = 'mrmat-ts-api-fastify-client'
export const CLIENT_PATH = fileURLToPath(new URL('../../src/client/cli.ts', import.meta.url))
export const USAGE_HINT = `Run '${CLIENT_NAME} --help' for usage.`
// As in cli.ts: the test's own loader, so the child compiles like the test process and c8 merges its coverage.
const NODE_ARGS = process.execArgv.length > 0 ? process.execArgv : ['--import', import.meta.resolve('tsx')]
const TIMEOUT_MS = 30_000

/** A home of the test's own: HOME and the XDG folders point into it, so no child ever touches the real home. */
export interface ClientHome {
  dir: string
  env: Record<string, string>
  /** The default config file, $XDG_CONFIG_HOME/mrmat-ts-api-fastify/client.json. */
  configFile: string
  /** $XDG_CACHE_HOME/mrmat-ts-api-fastify, where the tokens go. */
  cacheDir: string
}

let homes = 0

/**
 * A new home inside the test's folder. Call it after startStack: t.testdir() empties the folder, so it is called here
 * only when nothing has made the folder yet.
 */
export function clientHome(t: Test, config?: Record<string, unknown>): ClientHome {
  if (!existsSync(t.testdirName)) t.testdir()
  const dir = join(t.testdirName, `client-${String(++homes)}`)
  const env = { HOME: join(dir, 'home'), XDG_CONFIG_HOME: join(dir, 'config'), XDG_CACHE_HOME: join(dir, 'cache') }
  const configFile = join(env.XDG_CONFIG_HOME, 'mrmat-ts-api-fastify', 'client.json')
  mkdirSync(env.HOME, { recursive: true })
  if (config !== undefined) writeConfig(configFile, config)
  return { dir, env, configFile, cacheDir: join(env.XDG_CACHE_HOME, 'mrmat-ts-api-fastify') }
}

export function writeConfig(path: string, config: Record<string, unknown>): void {
  mkdirSync(join(path, '..'), { recursive: true })
  writeFileSync(path, JSON.stringify(config))
}

export interface ClientResult {
  code: number | null
  stdout: string
  stderr: string
}

/** The test's environment without MRMAT_* (and XDG) variables, plus the given ones. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const inherited = Object.entries(process.env).filter(([name]) => !name.startsWith('MRMAT_') && !name.startsWith('XDG_'))
  return { ...Object.fromEntries(inherited), ...extra }
}

/** The client as a child process with piped stdio (so not a terminal); killed at the end of the test if still running. */
export class ClientProcess {
  readonly child: ChildProcess
  readonly exited: Promise<ClientResult>
  stdout = ''
  stderr = ''

  constructor(t: Test, readonly args: string[], env: Record<string, string>) {
    this.child = spawn(process.execPath, [...NODE_ARGS, CLIENT_PATH, ...args], { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] })
    this.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => { this.stdout += chunk })
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { this.stderr += chunk })
    this.child.on('error', (error) => { this.stderr += `spawn failed: ${error.message}\n` })
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code) => { resolve({ code, stdout: this.stdout, stderr: this.stderr }) })
    })
    t.teardown(async () => {
      if (this.child.exitCode === null && this.child.signalCode === null) {
        this.child.kill('SIGKILL')
        await this.exited
      }
    })
  }

  #failure(what: string): Error {
    return new Error(`${CLIENT_NAME} ${this.args.join(' ')}: ${what}\n--- stdout\n${this.stdout}--- stderr\n${this.stderr}`)
  }

  async waitForExit(ms = TIMEOUT_MS): Promise<ClientResult> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        this.child.kill('SIGKILL')
        reject(this.#failure(`did not exit within ${String(ms)} ms`))
      }, ms)
    })
    try {
      return await Promise.race([this.exited, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  /** The first stdout line matching the pattern, as soon as it is printed. */
  async waitForLine(pattern: RegExp, ms = TIMEOUT_MS): Promise<RegExpExecArray> {
    const deadline = Date.now() + ms
    for (;;) {
      for (const line of this.stdout.split('\n').slice(0, -1)) {
        const match = pattern.exec(line)
        if (match !== null) return match
      }
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw this.#failure(`exited before printing /${pattern.source}/`)
      if (Date.now() > deadline) {
        this.child.kill('SIGKILL')
        throw this.#failure(`printed no line matching /${pattern.source}/ within ${String(ms)} ms`)
      }
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
}

export async function runClient(t: Test, args: string[], env: Record<string, string>): Promise<ClientResult> {
  return new ClientProcess(t, args, env).waitForExit()
}

/**
 * The client run inside the test process, exactly as its bin runs it but for the streams and the environment: a
 * child costs a second or two of CPU, so the variations of a command that a child has already shown are run here.
 */
export async function runHere(args: string[], env: Record<string, string>, options: { tty?: boolean } = {}): Promise<ClientResult> {
  let stdout = ''
  let stderr = ''
  const exited = run(args, {
    stdout: { write: (text: string) => { stdout += text } },
    stderr: { write: (text: string) => { stderr += text }, isTTY: options.tty === true },
    env: { ...env },
  })
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`${CLIENT_NAME} ${args.join(' ')}: did not finish within ${String(TIMEOUT_MS)} ms\n--- stdout\n${stdout}--- stderr\n${stderr}`))
    }, TIMEOUT_MS)
  })
  try {
    return { code: await Promise.race([exited, timeout]), stdout, stderr }
  } finally {
    clearTimeout(timer)
  }
}

/** The lines that are not empty. */
export const lines = (text: string): string[] => text.split('\n').filter((line) => line !== '')

/** A real identity provider and a real API server (SQLite) trusting it, and a client config pointing at both. */
export interface Stack {
  provider: TestProvider
  /** The API's base URL, no trailing slash. */
  server: string
  /** A side door into the API's database. */
  database: TestDatabase
  config: { client_id: string, discovery_url: string, server: string }
}

export async function startStack(t: Test, options: TestProviderOptions = {}): Promise<Stack> {
  const provider = await startTestProvider(t, options)
  // Before the database: both call t.testdir(), which empties the folder.
  const auth = await settingsFromSecrets(t, provider)
  const database = freshSqlite(t)
  const { url } = await startApp(t, await openTestDatabase(database), { auth })
  return {
    provider,
    server: url,
    database,
    config: { client_id: provider.deviceClient.id, discovery_url: `${provider.issuer}/.well-known/openid-configuration`, server: url },
  }
}

interface TokenAnswer {
  access_token: string
  refresh_token?: string
  id_token?: string
  expires_in?: number
  scope?: string
}

/** A person's tokens from the device flow, done in the test process: to fill a cache without running login. */
export async function personTokens(provider: TestProvider, login: string, scope: string): Promise<TokenAnswer> {
  const form = (fields: Record<string, string>) => ({ method: 'POST', body: new URLSearchParams(fields), signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
  const authorization = await fetch(`${provider.issuer}/device/auth`, form({ client_id: provider.deviceClient.id, scope }))
  const { device_code: deviceCode, user_code: userCode } = await authorization.json() as { device_code: string, user_code: string }
  await approveDevice(provider, userCode, login)
  const res = await fetch(`${provider.issuer}/token`, form({
    grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: deviceCode, client_id: provider.deviceClient.id,
  }))
  if (!res.ok) throw new Error(`device token: ${String(res.status)} ${await res.text()}`)
  return await res.json() as TokenAnswer
}

/** Writes a login's cache for the stack's client config, the way the client writes it; returns its path. */
export function seedCache(home: ClientHome, stack: Stack, tokens: TokenAnswer, changes: Partial<CachedTokens> = {}): string {
  const server = new URL(`${stack.server}/`)
  const discoveryUrl = new URL(stack.config.discovery_url)
  const path = cacheFile(home.env, { server, discoveryUrl, clientId: stack.config.client_id })
  writeCache(path, {
    version: 1,
    server: server.href,
    discovery_url: discoveryUrl.href,
    client_id: stack.config.client_id,
    grant: 'device_code',
    access_token: tokens.access_token,
    expires_at: Math.floor(Date.now() / 1000) + (tokens.expires_in ?? 300),
    refresh_token: tokens.refresh_token ?? null,
    scope: tokens.scope ?? null,
    user: null,
    ...changes,
  })
  return path
}
