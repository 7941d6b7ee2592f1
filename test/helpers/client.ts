import { EventEmitter } from 'node:events'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import { run } from '#src/client/cli.js'
import { cacheFile, writeCache, type CachedTokens } from '#src/client/token-cache.js'
import { freshSqlite, type TestDatabase } from '../fixtures/databases.js'
import {
  startTestProvider, type DeviceTokens, type TestProvider, type TestProviderOptions,
} from '../fixtures/oidc-provider.js'
import { listen } from './app.js'
import { settingsFromSecrets } from './auth.js'
import { compiled, distFile } from './build.js'
import { folder } from './folder.js'
import { Child, type ChildResult } from './process.js'
import { within } from './wait.js'

// The client CLI runs in the test process through run(args, io), exactly as its bin runs it but for the streams and
// the environment. A few child processes of the compiled package show what only a process does: the exit code, and
// that nothing (a pooled connection, a timer) keeps it alive once the command is done.

export const CLIENT_NAME = 'mrmat-ts-api-fastify-client'
export const USAGE_HINT = `Run '${CLIENT_NAME} --help' for usage.`
const TIMEOUT_MS = 30_000

/** A home of the test's own: HOME and the XDG folders point into it, so that no run touches the real home. */
export interface ClientHome {
  dir: string
  env: Record<string, string>
  /** The default config file, $XDG_CONFIG_HOME/mrmat-ts-api-fastify/client.json. */
  configFile: string
  /** $XDG_CACHE_HOME/mrmat-ts-api-fastify, where the tokens go. */
  cacheDir: string
}

let homes = 0

/** A new home in the test's folder, with a config file when given one. */
export function clientHome(t: Test, config?: Record<string, unknown>): ClientHome {
  const dir = join(folder(t), `client-${String(++homes)}`)
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

export type ClientResult = Pick<ChildResult, 'code' | 'stdout' | 'stderr'>

/** The client of the compiled package as a child process with piped stdio (so not a terminal). */
export async function clientProcess(t: Test, args: string[], env: Record<string, string>): Promise<Child> {
  await compiled()
  return new Child(t, process.execPath, [distFile('src/client/cli.js'), ...args], { env })
}

/** The client as a child process, run to its end. */
export async function runClient(t: Test, args: string[], env: Record<string, string>): Promise<ClientResult> {
  return (await clientProcess(t, args, env)).waitForExit(TIMEOUT_MS)
}

export interface RunningHere {
  /** What it has written so far. */
  readonly stdout: string
  readonly stderr: string
  /** The first complete stdout line matching the pattern, as soon as it is written. */
  waitForLine(pattern: RegExp): Promise<RegExpExecArray>
  finished: Promise<ClientResult>
}

/** The client run in the test process, the environment only `env`; `tty` makes its stderr a terminal. */
export function startHere(args: string[], env: Record<string, string>, options: { tty?: boolean } = {}): RunningHere {
  const output = { stdout: '', stderr: '' }
  // Told of every line written to stdout, and of the end.
  const progress = new EventEmitter()
  let done = false
  const code = run(args, {
    stdout: { write: (text: string) => { output.stdout += text; progress.emit('change') } },
    stderr: { write: (text: string) => { output.stderr += text }, isTTY: options.tty === true },
    env: { ...env },
  }).finally(() => { done = true; progress.emit('change') })
  const what = `${CLIENT_NAME} ${args.join(' ')}`
  const waitForLine = async (pattern: RegExp): Promise<RegExpExecArray> => {
    let check = (): void => undefined
    const found = new Promise<RegExpExecArray>((resolve, reject) => {
      check = () => {
        const match = output.stdout.split('\n').slice(0, -1).map((line) => pattern.exec(line)).find((m) => m !== null)
        if (match !== undefined) resolve(match)
        else if (done) reject(new Error(`${what}: ended without a line matching ${String(pattern)}:\n${output.stdout}`))
      }
      progress.on('change', check)
      check()
    })
    try {
      return await within(found, TIMEOUT_MS, `${what}: a line matching ${String(pattern)}`)
    } finally {
      progress.off('change', check)
    }
  }
  return {
    get stdout() { return output.stdout },
    get stderr() { return output.stderr },
    waitForLine,
    finished: within(code, TIMEOUT_MS, what).then((exit) => ({ code: exit, ...output })),
  }
}

/** The client run in the test process to its end. */
export async function runHere(args: string[], env: Record<string, string>,
  options: { tty?: boolean } = {}): Promise<ClientResult> {
  return startHere(args, env, options).finished
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
  const database = freshSqlite(t)
  const { url } = await listen(t, { database, auth: await settingsFromSecrets(t, provider), swaggerUi: false })
  return {
    provider,
    server: url,
    database,
    config: {
      client_id: provider.deviceClient.id,
      discovery_url: `${provider.issuer}/.well-known/openid-configuration`,
      server: url,
    },
  }
}

/** Writes a login's cache for the stack's client config, the way the client writes it; returns its path. */
export function seedCache(home: ClientHome, stack: Stack, tokens: DeviceTokens,
  changes: Partial<CachedTokens> = {}): string {
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
