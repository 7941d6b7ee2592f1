import { createHash } from 'node:crypto'
import {
  chmodSync, closeSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync,
} from 'node:fs'
import { dirname, join } from 'node:path'
import { APP_FOLDER, CLIENT_NAME, xdgDir } from './config.js'
import { AuthError, ClientError } from './errors.js'

/** What one login leaves behind, as JSON; the first keys say which server, provider and client the tokens are for. */
export interface CachedTokens {
  version: 1
  server: string
  discovery_url: string
  client_id: string
  grant: 'device_code' | 'client_credentials'
  access_token: string
  /** Seconds since the epoch; null when the provider did not say. */
  expires_at: number | null
  refresh_token: string | null
  scope: string | null
  /** Whom the tokens name, for messages. */
  user: string | null
}

type Check = (value: unknown) => boolean
const string: Check = (value) => typeof value === 'string'
const token: Check = (value) => typeof value === 'string' && value !== ''
const orNull = (check: Check): Check => (value) => value === null || check(value)

// Checked by hand: a schema library would cost each run of the client hundreds of module loads.
const FIELDS: Record<keyof CachedTokens, Check> = {
  version: (value) => value === 1,
  server: string,
  discovery_url: string,
  client_id: string,
  grant: (value) => value === 'device_code' || value === 'client_credentials',
  access_token: token,
  expires_at: orNull((value) => typeof value === 'number' && Number.isFinite(value)),
  refresh_token: orNull(token),
  scope: orNull(string),
  user: orNull(string),
}

/** The first field that is missing or wrong, or undefined when the value is a cache. */
function damage(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object'
  const record = value as Record<string, unknown>
  const bad = Object.entries(FIELDS).find(([key, check]) => !check(record[key]))
  return bad === undefined ? undefined : `${bad[0]} is missing or wrong`
}

export interface CacheKey {
  server: URL
  discoveryUrl: URL
  clientId: string
}

/**
 * Tokens this close to their expiry count as expired: the request still has to reach the server, whose clock may run
 * ahead.
 */
export const EXPIRY_MARGIN_SECONDS = 30

/**
 * $XDG_CACHE_HOME/mrmat-ts-api-fastify (default ~/.cache/…): losing the tokens only means logging in again, and a
 * config folder is often kept in a dotfiles repository where secrets do not belong.
 */
export function cacheDir(env: NodeJS.ProcessEnv): string {
  return join(xdgDir(env, 'XDG_CACHE_HOME', '.cache'), APP_FOLDER)
}

/** One file per server, discovery URL and client id, so that logins to different servers or providers do not clash. */
export function cacheFile(env: NodeJS.ProcessEnv, key: CacheKey): string {
  const digest = createHash('sha256')
    .update(JSON.stringify([key.server.href, key.discoveryUrl.href, key.clientId]))
    .digest('hex')
  return join(cacheDir(env), `tokens-${digest.slice(0, 16)}.json`)
}

const LOG_IN_AGAIN = `run '${CLIENT_NAME} login' to log in again`

/** The cached tokens, or undefined when there are none; a damaged file is an authentication failure that says so. */
export function readCache(path: string): CachedTokens | undefined {
  let text: string
  try {
    // As ssh does with a private key: tokens others could have read are not used.
    const mode = statSync(path).mode & 0o777
    if ((mode & 0o077) !== 0) {
      throw new AuthError(`the token cache ${path} can be read by others (mode ${mode.toString(8).padStart(4, '0')}), `
        + `so its tokens are not used; ${LOG_IN_AGAIN} (the new cache is the user's alone)`)
    }
    text = readFileSync(path, 'utf8')
  } catch (error) {
    if (error instanceof AuthError) throw error
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return undefined
    throw new AuthError(`cannot read the token cache ${path}: ${code ?? (error as Error).message}; ${LOG_IN_AGAIN}`)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new AuthError(`the token cache ${path} is damaged (not JSON); ${LOG_IN_AGAIN}`)
  }
  const problem = damage(parsed)
  if (problem !== undefined) throw new AuthError(`the token cache ${path} is damaged (${problem}); ${LOG_IN_AGAIN}`)
  return parsed as CachedTokens
}

/** Writes the tokens readable by the user alone (0600, folder 0700), replacing the old file in one rename. */
export function writeCache(path: string, tokens: CachedTokens): void {
  const dir = dirname(path)
  const temporary = `${path}.${process.pid}.tmp`
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    // mkdir leaves an existing folder as it was; it is ours alone, so it is made private whatever it was.
    chmodSync(dir, 0o700)
    writeFileSync(temporary, `${JSON.stringify(tokens, null, 2)}\n`, { mode: 0o600, flag: 'wx' })
    renameSync(temporary, path)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new ClientError(`cannot write the token cache ${path}: ${code ?? (error as Error).message}`)
  } finally {
    rmSync(temporary, { force: true })
  }
}

/** Whether there was a cache to remove. */
export function removeCache(path: string): boolean {
  try {
    rmSync(path)
    return true
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return false
    throw new ClientError(`cannot remove the token cache ${path}: ${code ?? (error as Error).message}`)
  }
}

export function isFresh(tokens: CachedTokens, now = Date.now()): boolean {
  return tokens.expires_at === null || tokens.expires_at - EXPIRY_MARGIN_SECONDS > now / 1000
}

/**
 * The logins cached for this user, each with its file. Files that cannot be used (damaged, others') are left out, and
 * why is added to `unusable` when it is given.
 */
export function listLogins(env: NodeJS.ProcessEnv, unusable?: string[]): (CachedTokens & { path: string })[] {
  const dir = cacheDir(env)
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch {
    return []
  }
  return names.filter((name) => /^tokens-[0-9a-f]{16}\.json$/.test(name)).sort().flatMap((name) => {
    const path = join(dir, name)
    try {
      const cached = readCache(path)
      return cached === undefined ? [] : [{ ...cached, path }]
    } catch (error) {
      if (!(error instanceof AuthError)) throw error
      unusable?.push(error.message)
      return []
    }
  })
}

/** A lock older than this was left by a command that died: no renewal takes so long. */
const STALE_LOCK_MS = 120_000
const LOCK_POLL_MS = 50

/**
 * Runs `work` holding the lock file `<path>.lock` (created exclusively, so one holder at a time, across processes), so
 * that two commands that find the same token expired do not both renew it: with rotating refresh tokens, the second
 * renewal would spend a refresh token the first already replaced, and the provider would end the session.
 */
export async function withCacheLock<T>(path: string, waitMs: number, work: () => Promise<T>): Promise<T> {
  const lock = `${path}.lock`
  const deadline = Date.now() + waitMs
  for (;;) {
    try {
      closeSync(openSync(lock, 'wx', 0o600))
      break
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code !== 'EEXIST') throw new ClientError(`cannot lock the token cache ${lock}: ${code ?? String(error)}`)
    }
    let age: number
    try {
      age = Date.now() - statSync(lock).mtimeMs
    } catch {
      continue
    }
    if (age > STALE_LOCK_MS) {
      rmSync(lock, { force: true })
      continue
    }
    if (Date.now() > deadline) {
      throw new ClientError(`another command holds the token cache's lock ${lock}; `
        + 'if none is running, remove the file')
    }
    await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS))
  }
  try {
    return await work()
  } finally {
    rmSync(lock, { force: true })
  }
}
