import { NetworkError } from './errors.js'

/** Who is being asked, for messages such as "cannot reach the server at http://…: connection refused". */
export interface Party {
  name: 'server' | 'identity provider'
  /** The address to name: the configured URL, or the endpoint's origin. */
  at: string
}

export interface HttpOptions {
  /** Bound on the whole exchange, body included. */
  timeoutMs: number
  /** Debug lines; never given a token or a body. */
  debug: (line: string) => void
}

export interface Answer {
  status: number
  headers: Headers
  text: string
}

const REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'no such host',
  EAI_AGAIN: 'the host name could not be resolved',
  ECONNRESET: 'the connection was reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'the connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'the connection timed out',
  UND_ERR_SOCKET: 'the connection closed unexpectedly',
  UND_ERR_HEADERS_TIMEOUT: 'no answer in time',
}

interface Cause {
  code?: unknown
  message?: unknown
  errors?: unknown[]
}

/** Why fetch failed, in a few words: its cause's code (an AggregateError's first, for localhost's two addresses). */
export function failureReason(error: unknown): string {
  const cause = (error as { cause?: Cause }).cause ?? {}
  const first = Array.isArray(cause.errors) ? cause.errors[0] as Cause | undefined : undefined
  const code = typeof cause.code === 'string' ? cause.code : typeof first?.code === 'string' ? first.code : undefined
  if (code !== undefined && code in REASONS) return REASONS[code] ?? code
  const message = typeof cause.message === 'string' && cause.message !== '' ? cause.message : (error as Error).message
  if (code !== undefined && /CERT|TLS|SSL|SIGNATURE/.test(code)) return `TLS failed: ${message}`
  return code === undefined ? message : `${message} (${code})`
}

/** One HTTP exchange, bounded in time; a failure to get an answer becomes one line naming whom and why. */
export async function exchange(party: Party, url: URL, init: RequestInit, options: HttpOptions): Promise<Answer> {
  const started = Date.now()
  const method = init.method ?? 'GET'
  options.debug(`${method} ${url.href}`)
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(options.timeoutMs) })
    const text = await res.text()
    options.debug(`${method} ${url.href}: ${res.status} in ${Date.now() - started} ms`)
    return { status: res.status, headers: res.headers, text }
  } catch (error) {
    const name = (error as Error).name
    if (name === 'TimeoutError' || name === 'AbortError') {
      throw new NetworkError(`the ${party.name} at ${party.at} did not answer within ${options.timeoutMs / 1000} s`)
    }
    throw new NetworkError(`cannot reach the ${party.name} at ${party.at}: ${failureReason(error)}`)
  }
}

/** The body as JSON, or undefined when it is empty or not JSON. */
export function json(answer: Answer): unknown {
  if (answer.text === '') return undefined
  try {
    return JSON.parse(answer.text)
  } catch {
    return undefined
  }
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
