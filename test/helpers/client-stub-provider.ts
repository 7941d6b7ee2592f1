import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

interface Tap {
  teardown(fn: () => unknown): void
}

/** A status and a JSON body (a string is sent as it is). */
export type Reply = [number, unknown]

export interface StubRequest {
  /** performance.now() when it arrived. */
  at: number
  path: string
  form: URLSearchParams
  authorization: string | undefined
}

export interface StubScript {
  /** The device authorization answer; default a code valid for 600 s, no interval. */
  device?: Reply
  /** Token endpoint answers in turn; the last one repeats. */
  token?: Reply[]
  /** Replaces discovery's fields (undefined removes one). */
  discovery?: Record<string, unknown>
}

export interface StubProvider {
  issuer: string
  discoveryUrl: string
  /** Every request to the device and token endpoints, in order. */
  requests: StubRequest[]
  tokenRequests(): StubRequest[]
}

const base64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')

/** An access token shaped like a JWT (unsigned: only the stub's client reads it, for the name). */
export function stubAccessToken(claims: Record<string, unknown> = {}): string {
  return `${base64url({ alg: 'none' })}.${base64url({ sub: 'stub-user', preferred_username: 'stub-user', ...claims })}.`
}

export const PENDING: Reply = [400, { error: 'authorization_pending' }]
export const SLOW_DOWN: Reply = [400, { error: 'slow_down' }]
export const GRANTED: Reply = [200, { access_token: stubAccessToken(), token_type: 'Bearer', expires_in: 300, refresh_token: 'stub-refresh', scope: 'openid' }]

/**
 * A tiny identity provider on 127.0.0.1 with discovery, device authorization and a token endpoint that answers from a
 * script: for the paths the real provider never takes (slow_down, expired_token) and for malformed answers.
 */
export async function startStubProvider(t: Tap, script: StubScript = {}): Promise<StubProvider> {
  const requests: StubRequest[] = []
  let tokenTurn = 0
  let issuer = ''
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://stub').pathname
    let body = ''
    req.setEncoding('utf8').on('data', (chunk: string) => { body += chunk })
    req.on('end', () => {
      const send = ([status, payload]: Reply) => {
        res.writeHead(status, { 'content-type': typeof payload === 'string' ? 'text/html' : 'application/json', connection: 'close' })
        res.end(typeof payload === 'string' ? payload : JSON.stringify(payload))
      }
      if (path === '/.well-known/openid-configuration') {
        send([200, {
          issuer,
          token_endpoint: `${issuer}/token`,
          device_authorization_endpoint: `${issuer}/device/auth`,
          ...script.discovery,
        }])
        return
      }
      const form = new URLSearchParams(body)
      requests.push({ at: performance.now(), path, form, authorization: req.headers.authorization })
      if (path === '/device/auth') {
        send(script.device ?? [200, {
          device_code: 'stub-device-code',
          user_code: 'WDJB-MJHT',
          verification_uri: `${issuer}/device`,
          verification_uri_complete: `${issuer}/device?user_code=WDJB-MJHT`,
          expires_in: 600,
        }])
      } else if (path === '/token') {
        const replies = script.token ?? [GRANTED]
        send(replies[Math.min(tokenTurn++, replies.length - 1)] ?? GRANTED)
      } else {
        send([404, { error: 'not_found' }])
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  issuer = `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`
  t.teardown(async () => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => { resolve() })
  }))
  return {
    issuer,
    discoveryUrl: `${issuer}/.well-known/openid-configuration`,
    requests,
    tokenRequests: () => requests.filter((request) => request.path === '/token'),
  }
}
