import { request, type IncomingHttpHeaders } from 'node:http'

export interface RawAnswer {
  status: number
  headers: IncomingHttpHeaders
  text: string
  body: Record<string, unknown> | undefined
}

export interface RawRequest {
  method?: string
  headers?: Record<string, string>
  body?: string
  /** Give up after this many milliseconds (default 5000). */
  timeout?: number
}

/**
 * One request on a connection of its own (no keep-alive agent), so that every request is a new
 * connection: a cluster's primary hands each to the next worker, and a closed listener refuses it.
 * Rejects with the socket error (ECONNREFUSED, ECONNRESET, ...) when there is no full answer.
 */
export async function httpRequest(url: string, options: RawRequest = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: options.method ?? 'GET',
      headers: options.headers,
      agent: false,
      timeout: options.timeout ?? 5000,
    }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('error', reject)
      res.on('end', () => {
        let body: Record<string, unknown> | undefined
        try {
          body = text === '' ? undefined : JSON.parse(text) as Record<string, unknown>
        } catch {
          body = undefined
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body })
      })
    })
    req.on('timeout', () => { req.destroy(new Error(`no answer from ${url} in time`)) })
    req.on('error', reject)
    req.end(options.body)
  })
}

/** Resolves once the probe returns a truthy value; rejects after ms. */
export async function pollUntil<T>(probe: () => Promise<T | undefined> | T | undefined, ms: number, what: string, every = 50): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await probe()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, every))
  }
}
