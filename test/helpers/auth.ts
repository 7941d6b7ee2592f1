import { setTimeout as delay } from 'node:timers/promises'
import { readClientSecrets, resolveAuthSettings, type AuthSettings } from '#src/plugins/auth/settings.js'
import { approveDevice, type TestProvider } from './oidc-provider.js'

interface Tap {
  testdir(): string
}

export const READ_SCOPE = 'mrmat-ts-api-fastify-resource-read'
export const WRITE_SCOPE = 'mrmat-ts-api-fastify-resource-write'

/** The problem types as the README documents them, written out so that a changed URL fails here. */
const PROBLEM_BASE = 'https://github.com/MrMatAP/mrmat-ts-api-fastify/blob/main/README.md#problem-'
export const Problems = {
  tokenRequired: `${PROBLEM_BASE}token-required`,
  invalidToken: `${PROBLEM_BASE}invalid-token`,
  insufficientScope: `${PROBLEM_BASE}insufficient-scope`,
  notConfigured: `${PROBLEM_BASE}authentication-not-configured`,
  unavailable: `${PROBLEM_BASE}identity-provider-unavailable`,
} as const

/** No request to a server under test may take longer than this: a hang fails the test instead of stalling it. */
export const REQUEST_TIMEOUT_MS = 5_000

/** AuthSettings the way a user gets them: the provider's client-secrets file, and the API's audience. */
export async function settingsFromSecrets(t: Tap, provider: TestProvider): Promise<AuthSettings> {
  const settings = resolveAuthSettings({
    secrets: readClientSecrets(await provider.writeClientSecrets(t.testdir())),
    audience: provider.audience,
  })
  if (settings === undefined) throw new Error('the client secrets gave no auth settings')
  return settings
}

export interface Challenge {
  scheme: string
  params: Record<string, string>
}

/** A WWW-Authenticate header with one challenge, its auth-params as a map. */
export function parseChallenge(header: string | null): Challenge | undefined {
  if (header === null) return undefined
  const match = /^(\S+)\s*(.*)$/.exec(header)
  if (match === null) return undefined
  const params: Record<string, string> = {}
  for (const [, name = '', value = ''] of (match[2] ?? '').matchAll(/([\w-]+)="([^"]*)"/g)) params[name] = value
  return { scheme: match[1] ?? '', params }
}

export interface Answer {
  status: number
  headers: Headers
  /** The raw body. */
  text: string
  /** The body parsed as JSON (a greeting or a problem), undefined when empty or not JSON. */
  body: Record<string, unknown> | undefined
  challenge: Challenge | undefined
}

export interface CallOptions {
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string
  /** The whole Authorization header, for malformed ones. */
  authorization?: string
  method?: string
}

/** One request to the server, bounded in time, with the parts the auth tests look at. */
export async function call(url: string, options: CallOptions = {}): Promise<Answer> {
  const authorization = options.authorization ?? (options.token === undefined ? undefined : `Bearer ${options.token}`)
  const res = await fetch(url, {
    method: options.method ?? 'GET',
    headers: authorization === undefined ? {} : { authorization },
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  })
  const text = await res.text()
  let body: Record<string, unknown> | undefined
  try {
    body = text === '' ? undefined : JSON.parse(text) as Record<string, unknown>
  } catch {
    body = undefined
  }
  return { status: res.status, headers: res.headers, text, body, challenge: parseChallenge(res.headers.get('www-authenticate')) }
}

/** Whether any response header or the body holds the text (a token, say). */
export function echoes(answer: Answer, text: string): boolean {
  if (answer.text.includes(text)) return true
  for (const [, value] of answer.headers) if (value.includes(text)) return true
  return false
}

/**
 * Lets a time-based window (a cooldown, a cache TTL) run out. Only for those: anything the test can
 * observe is polled with waitFor instead.
 */
export async function elapse(ms: number): Promise<void> {
  await delay(ms)
}

/** The promise's value, or a failure naming what did not finish within ms. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`${what} did not finish within ${String(ms)} ms`)) }, ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Polls until probe's value satisfies done, at most ms; returns the last value either way. */
export async function waitFor<T>(probe: () => Promise<T>, done: (value: T) => boolean, ms: number, every = 50): Promise<T> {
  const deadline = Date.now() + ms
  let value = await probe()
  while (!done(value) && Date.now() < deadline) {
    await delay(every)
    value = await probe()
  }
  return value
}

const base64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')

/** A JWT with `alg: none` and no signature: header.payload. */
export function unsignedJwt(header: Record<string, unknown>, payload: Record<string, unknown>): string {
  return `${base64url({ ...header, alg: 'none' })}.${base64url(payload)}.`
}

/** The token's payload with some claims changed, its header and signature kept. */
export function tamper(jwt: string, changes: Record<string, unknown>): string {
  const [header = '', payload = '', signature = ''] = jwt.split('.')
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>
  return `${header}.${base64url({ ...claims, ...changes })}.${signature}`
}

/**
 * An opaque access token in a person's name (device flow, resource = the opaque indicator). Unlike
 * opaque() tokens of client credentials, its introspection answer carries `sub`.
 */
export async function personOpaqueToken(provider: TestProvider, login: string, scope = READ_SCOPE): Promise<string> {
  const authorization = await fetch(`${provider.issuer}/device/auth`, {
    method: 'POST',
    body: new URLSearchParams({ client_id: provider.deviceClient.id, scope, resource: provider.resources.opaque }),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  })
  if (!authorization.ok) throw new Error(`device authorization: ${String(authorization.status)} ${await authorization.text()}`)
  const { device_code: deviceCode, user_code: userCode } = await authorization.json() as { device_code: string, user_code: string }
  await approveDevice(provider, userCode, login)
  const res = await fetch(`${provider.issuer}/token`, {
    method: 'POST',
    body: new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
      device_code: deviceCode,
      client_id: provider.deviceClient.id,
    }),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  })
  if (!res.ok) throw new Error(`device token: ${String(res.status)} ${await res.text()}`)
  const { access_token: token } = await res.json() as { access_token: string }
  if (token.includes('.')) throw new Error('the device flow gave a JWT, not an opaque token')
  return token
}
