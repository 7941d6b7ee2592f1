import { spawn, spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { request as httpRequest, type Agent, type IncomingHttpHeaders } from 'node:http'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'

interface Tap {
  teardown(fn: () => unknown): void
}

/** The committed configuration: the test runs it with only the `@test` lines changed. */
export const NGINX_CONF = new URL('../../deploy/nginx.conf', import.meta.url)
const START_TIMEOUT_MS = 10_000
const STOP_TIMEOUT_MS = 5_000

/** The nginx binary: on PATH, or where Debian and the upstream packages put it (sbin is not on every PATH). */
export function findNginx(): string | undefined {
  return ['nginx', '/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx']
    .find((candidate) => spawnSync(candidate, ['-v'], { stdio: 'ignore' }).status === 0)
}

/** Replaces exactly one match, so that a changed configuration fails loudly instead of running unchanged. */
function replaceOnce(text: string, pattern: RegExp, replace: (match: string) => string, what: string): string {
  const matches = text.match(new RegExp(pattern.source, `${pattern.flags.replace('g', '')}g`)) ?? []
  if (matches.length !== 1) throw new Error(`deploy/nginx.conf: expected one ${what}, found ${String(matches.length)}`)
  return text.replace(pattern, replace)
}

export interface NginxSubstitutions {
  /** The port nginx listens on, on 127.0.0.1. */
  port: number
  /** The backends, host:port each. */
  backends: string[]
  /** Where the access log and the temporary files go. */
  dir: string
}

/** deploy/nginx.conf with its three `@test` points filled in: the listen line, the upstream servers, the paths. */
export function testConfig(source: string, { port, backends, dir }: NginxSubstitutions): string {
  let config = replaceOnce(source, /(# @test listen\n\s*)listen [^;]+;/, (match) =>
    match.replace(/listen [^;]+;/, `listen 127.0.0.1:${port};`), 'listen line')
  config = replaceOnce(config, /(# @test upstream begin\n)([\s\S]*?)(\s*# @test upstream end)/, (match) => {
    const [, begin = '', body = '', end = ''] = /(# @test upstream begin\n)([\s\S]*?)(\s*# @test upstream end)/.exec(match) ?? []
    const template = body.split('\n').find((line) => /^\s*server \S+/.test(line))
    if (template === undefined) throw new Error('deploy/nginx.conf: no server line in the upstream')
    // Each backend on a copy of the committed server line, so its parameters (max_fails, ...) are the committed ones.
    return begin + backends.map((backend) => template.replace(/server \S+/, `server ${backend}`)).join('\n') + end
  }, 'upstream block')
  config = replaceOnce(config, /# @test paths begin[\s\S]*?# @test paths end/, (block) =>
    block.replace(/ \/\S+\/(?=[^/\s]+[ ;])/g, ` ${dir}/`), 'paths block')
  return config
}

export interface RunningNginx {
  /** http://127.0.0.1:<port> */
  url: string
  port: number
  /** The access log (log_format proxied), one line a request. */
  accessLog(): string
  /** What nginx wrote to stderr: its error log. */
  stderr(): string
}

/** nginx in the foreground (master and workers) with deploy/nginx.conf in front of the backends; stopped at teardown. */
export async function startNginx(t: Tap, binary: string, substitutions: NginxSubstitutions): Promise<RunningNginx> {
  const { dir, port } = substitutions
  const conf = join(dir, 'nginx.conf')
  writeFileSync(conf, testConfig(readFileSync(NGINX_CONF, 'utf8'), substitutions))
  // -e: the error log before the configuration is read (the compiled-in one may not be writable).
  const globals = `daemon off; master_process on; pid ${join(dir, 'nginx.pid')}; error_log stderr notice;`
  // Its own process group: should it not stop on SIGTERM, SIGKILL reaches the workers too.
  const child = spawn(binary, ['-e', 'stderr', '-p', dir, '-c', conf, '-g', globals], { stdio: ['ignore', 'ignore', 'pipe'], detached: true })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const exited = new Promise<void>((resolve) => child.on('close', () => { resolve() }))
  child.on('error', (error) => { stderr += `spawn failed: ${error.message}\n` })
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
    child.kill('SIGTERM')
    const stopped = await Promise.race([exited.then(() => true), delay(STOP_TIMEOUT_MS, false)])
    if (!stopped) {
      process.kill(-child.pid, 'SIGKILL')
      await exited
    }
  })
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + START_TIMEOUT_MS
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nginx exited at start:\n${stderr}`)
    try {
      // nginx answers once it listens, whatever the backends say.
      await get(`${url}/nginx-started`)
      break
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`nginx did not answer within ${String(START_TIMEOUT_MS)} ms\n${stderr}`, { cause: error })
      await delay(50)
    }
  }
  return { url, port, accessLog: () => readFileSync(join(dir, 'mrmat-ts-api-fastify.access.log'), 'utf8'), stderr: () => stderr }
}

export interface GetOptions {
  method?: string
  headers?: Record<string, string>
  body?: string | Buffer
  /** The address to connect from, e.g. 127.0.0.2: another loopback address than nginx's own. */
  localAddress?: string
  agent?: Agent
  timeoutMs?: number
}

export interface Reply {
  status: number
  headers: IncomingHttpHeaders
  body: string
}

/** One HTTP request with node:http (fetch cannot choose the local address), bounded in time. */
export async function get(url: string, options: GetOptions = {}): Promise<Reply> {
  const timeoutMs = options.timeoutMs ?? 5_000
  return new Promise<Reply>((resolve, reject) => {
    const req = httpRequest(url, {
      method: options.method ?? 'GET',
      headers: options.headers,
      localAddress: options.localAddress,
      agent: options.agent,
      signal: AbortSignal.timeout(timeoutMs),
    }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body }) })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(options.body)
  })
}
