import { request, type Agent, type IncomingHttpHeaders } from 'node:http'
import type { OutgoingHttpHeaders } from 'node:http'
import type { FastifyInstance } from 'fastify'
import { checkConformance } from './conformance.js'
import { within } from './wait.js'

/** An app, which is sent requests through inject, or the base URL of a server, which is sent them over a socket. */
export type Target = FastifyInstance | string

export interface SendOptions {
  method?: string
  headers?: Record<string, string>
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string
  /** Sent as JSON with content-type application/json. */
  json?: unknown
  /** Sent as it is (give a content-type in `headers`). */
  body?: string | Buffer
  /** A socket only: the address to connect from, e.g. 127.0.0.2, another loopback address than the server's. */
  localAddress?: string
  /** A socket only: the agent to reuse connections of; by default each request has a connection of its own. */
  agent?: Agent
  /** Give up after this many milliseconds; default 5000. */
  timeout?: number
}

export interface Answer<T = unknown> {
  status: number
  /** Header names in lower case; a repeated header's values joined by ', '. */
  headers: Record<string, string | undefined>
  text: string
  /** The body parsed as JSON; undefined when empty or not JSON. */
  body: T | undefined
}

const TIMEOUT_MS = 5_000

function flatHeaders(headers: IncomingHttpHeaders | OutgoingHttpHeaders): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [
    name.toLowerCase(),
    value === undefined ? undefined : Array.isArray(value) ? value.join(', ') : String(value),
  ]))
}

function answer<T>(status: number, headers: Record<string, string | undefined>, text: string): Answer<T> {
  let body: T | undefined
  try {
    body = text === '' ? undefined : JSON.parse(text) as T
  } catch {
    body = undefined
  }
  return { status, headers, text, body }
}

/**
 * A connection of its own per request unless an agent is given, so that each request is a new connection: a cluster's
 * primary hands each to the next worker, and a closed listener refuses it. Rejects with the socket error (ECONNREFUSED,
 * ECONNRESET, ...) when there is no full answer.
 */
async function overSocket<T>(url: URL, method: string, headers: Record<string, string>, options: SendOptions,
  body: string | Buffer | undefined): Promise<Answer<T>> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method,
      headers,
      agent: options.agent ?? false,
      localAddress: options.localAddress,
      signal: AbortSignal.timeout(options.timeout ?? TIMEOUT_MS),
    }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('error', reject)
      res.on('end', () => { resolve(answer<T>(res.statusCode ?? 0, flatHeaders(res.headers), text)) })
    })
    req.on('error', reject)
    req.end(body)
  })
}

/**
 * One request to the target, its answer read in full. `path` may be an absolute URL (a Location, a `next` link): an
 * app is then sent its path and query, with the URL's host.
 */
export async function send<T = unknown>(target: Target, path: string, options: SendOptions = {}): Promise<Answer<T>> {
  const method = options.method ?? 'GET'
  const headers: Record<string, string> = { ...options.headers }
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
  let body = options.body
  if (options.json !== undefined) {
    body = JSON.stringify(options.json)
    headers['content-type'] ??= 'application/json'
  }
  if (typeof target === 'string') return overSocket<T>(new URL(path, target), method, headers, options, body)
  const reply = await within(target.inject({
    method: method as 'GET',
    url: path,
    headers,
    ...(body === undefined ? {} : { payload: body }),
  }), options.timeout ?? TIMEOUT_MS, `${method} ${path}`)
  const received = answer<T>(reply.statusCode, flatHeaders(reply.headers), reply.body)
  // Held to the app's own OpenAPI document: an answer it does not describe fails the test that got it.
  await checkConformance(target, { method, path, headers, body }, received)
  return received
}
