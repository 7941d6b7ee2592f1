import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import {
  calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, SignJWT,
  type CryptoKey, type JWK, type KeyObject,
} from 'jose'

interface Tap {
  teardown(fn: () => unknown): void
}

export interface TestClient {
  id: string
  secret: string
}

/** A further confidential client for client-credentials tokens. */
export interface TestClientOptions extends TestClient {
  /** preferred_username in its tokens; left out, its tokens have no preferred_username. */
  preferredUsername?: string
  /** The resource scopes it may be given (default all); others it asks for are dropped. */
  scopes?: string[]
}

export interface TestProviderOptions {
  /** The API's audience, the aud of every access token (default 'mrmat-ts-api-fastify'). */
  audience?: string
  /** The resource scopes (default the API's read and write scopes). */
  scopes?: string[]
  /** Access token lifetime in seconds (default 300). */
  accessTokenTTL?: number
  /** Clients besides `client`, `apiClient` and `deviceClient`. */
  clients?: TestClientOptions[]
}

export interface TokenRequest {
  /** Space-separated scopes (default all resource scopes; '' asks for none). */
  scope?: string
  /** Another registered client (default `client`). */
  client?: TestClient
  /** The token's aud (default `audience`): any audience can be asked for, to get real tokens meant for another API. */
  audience?: string
}

export type SigningKey = 'current' | 'previous' | CryptoKey | KeyObject | Uint8Array

export interface SignOptions {
  /** Merged over { alg: 'RS256', typ: 'at+jwt', kid }; the kid is the named key's, or the current one's for a key of your own. */
  header?: Record<string, unknown>
  /** 'current' (default), 'previous' (the one current before the last rotateKeys()), or a key of your own. */
  key?: SigningKey
}

export interface TestProvider {
  /** 'http://127.0.0.1:<port>', no trailing slash; the port stays across stop()/start() and rotateKeys(). */
  readonly issuer: string
  readonly audience: string
  readonly scopes: string[]
  /** The resource indicators behind `audience`: a JWT and an opaque resource server. */
  readonly resources: { jwt: string, opaque: string }
  /** A confidential client that may use client_credentials; its tokens carry preferred_username 'test-client-display'. */
  readonly client: TestClient
  /** The API server's own confidential client, the only one the introspection endpoint answers (others get active: false). */
  readonly apiClient: TestClient
  /** The client CLI's public client (no secret) for the device authorization grant and refresh tokens. */
  readonly deviceClient: { id: string }
  /** The kid of the key that signs new tokens. */
  readonly kid: string
  /** Unexpected errors inside the provider (they answer 500 server_error); also printed. */
  readonly serverErrors: Error[]
  /** client_credentials grant → a JWT access token (RS256, typ at+jwt, kid) with iss, aud, sub, client_id, scope, preferred_username, exp, iat, jti. */
  jwt(request?: TokenRequest): Promise<string>
  /** client_credentials grant → an opaque access token, for the introspection path. */
  opaque(request?: TokenRequest): Promise<string>
  /** Revokes an access token issued to `client` (or the given client); an opaque one then introspects inactive. */
  revoke(token: string, client?: TestClient): Promise<void>
  /** A JWT signed like the provider's access tokens; payload is merged over real-looking claims (a claim given as undefined is left out). */
  sign(payload?: Record<string, unknown>, options?: SignOptions): Promise<string>
  /** The public JWKS that /jwks serves. */
  publicJwks(): { keys: JWK[] }
  /** The private JWK of the current signing key, or of the previous one. */
  privateJwk(which?: 'current' | 'previous'): JWK
  /** A new signing key signs from now on; the old ones stay published unless dropOld. Same port, clients and issued tokens. Returns the new kid. */
  rotateKeys(options?: { dropOld?: boolean }): Promise<string>
  /** Stops listening: connections are refused, as when the provider is down. */
  stop(): Promise<void>
  /** Listens again on the same port with the same keys, clients and issued tokens. */
  start(): Promise<void>
  /** HTTP requests received per path (e.g. '/jwks', '/token/introspection') since the start or resetRequestCounts(), not counting the fixture's own. */
  requests(path: string): number
  resetRequestCounts(): void
  /** Writes the API server's client secrets (Flask-OIDC format) as client_secrets.json into dir and returns its path. */
  writeClientSecrets(dir: string, options?: { redirectUris?: string[] }): Promise<string>
  /** Stops for good; the test's teardown calls it too. */
  close(): Promise<void>
}

/** The parts of oidc-provider used here: it ships no type declarations. */
interface OidcProvider {
  callback(): RequestListener
  on(event: 'server_error', listener: (ctx: unknown, error: Error) => void): unknown
}
interface OidcModule {
  Provider: new (issuer: string, configuration: Record<string, unknown>) => OidcProvider
  errors: { InvalidTarget: new (description?: string) => Error }
}

// A module name as a plain string keeps TypeScript from demanding declarations the package does not have.
const OIDC_PROVIDER: string = 'oidc-provider'
let oidcModule: Promise<OidcModule> | undefined
async function loadOidcProvider(): Promise<OidcModule> {
  oidcModule ??= withoutProductionWarnings(async () => await import(OIDC_PROVIDER) as OidcModule)
  return oidcModule
}

/** Printed on import (we run Node 20) and for every Provider (devInteractions): both concern production use only. */
const PRODUCTION_WARNINGS = /oidc-provider WARNING: (Unsupported runtime|a quick start development-only feature devInteractions)/

async function withoutProductionWarnings<T>(fn: () => T | Promise<T>): Promise<T> {
  const original = Object.getOwnPropertyDescriptor(console, 'warn')
  const warn = console.warn.bind(console)
  console.warn = (...args: unknown[]) => {
    if (!(typeof args[0] === 'string' && PRODUCTION_WARNINGS.test(args[0]))) warn(...args)
  }
  try {
    return await fn()
  } finally {
    if (original !== undefined) Object.defineProperty(console, 'warn', original)
  }
}

/** Requests the fixture makes itself carry this header so that requests() counts only the API server's. */
const OWN_REQUEST = 'x-test-provider-fixture'
const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code'
const DEFAULT_AUDIENCE = 'mrmat-ts-api-fastify'
const DEFAULT_SCOPES = ['mrmat-ts-api-fastify-resource-read', 'mrmat-ts-api-fastify-resource-write']
/** The preferred_username in the tokens of the default client. */
const CLIENT_DISPLAY_NAME = 'test-client-display'

interface PooledKey {
  jwk: Promise<JWK>
  lent: boolean
}

/** RSA key generation takes 120–250 ms: keys made in this process are kept and lent to one live provider at a time. */
const keyPool: PooledKey[] = []

function borrowKey(): PooledKey {
  let key = keyPool.find((candidate) => !candidate.lent)
  if (key === undefined) {
    key = { jwk: generateSigningJwk(), lent: false }
    keyPool.push(key)
  }
  key.lent = true
  return key
}

async function generateSigningJwk(): Promise<JWK> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true })
  const jwk = await exportJWK(privateKey)
  return { ...jwk, kid: await calculateJwkThumbprint(jwk), alg: 'RS256', use: 'sig' }
}

function publicPart({ kty, n, e, kid, alg, use }: JWK): JWK {
  return { kty, n, e, kid, alg, use }
}

interface Stored {
  payload: Record<string, unknown>
  expiresAt: number
}

/**
 * oidc-provider's storage, a Map the fixture keeps so that issued tokens, grants and sessions outlive rotateKeys()
 * (which builds a new Provider). Being our own adapter also silences the warning about the built-in one.
 */
function memoryAdapter(store: Map<string, Stored>): (model: string) => unknown {
  return (model) => {
    const prefix = `${model}:`
    const live = (entry?: Stored) => (entry !== undefined && entry.expiresAt > Date.now() ? entry.payload : undefined)
    const findBy = (field: string, value: string) => {
      for (const [key, entry] of store) if (key.startsWith(prefix) && entry.payload[field] === value) return live(entry)
      return undefined
    }
    return {
      upsert: async (id: string, payload: Record<string, unknown>, expiresIn?: number) => {
        store.set(prefix + id, { payload, expiresAt: expiresIn === undefined ? Infinity : Date.now() + expiresIn * 1000 })
      },
      find: async (id: string) => live(store.get(prefix + id)),
      findByUid: async (uid: string) => findBy('uid', uid),
      findByUserCode: async (userCode: string) => findBy('userCode', userCode),
      consume: async (id: string) => {
        const entry = store.get(prefix + id)
        if (entry !== undefined) entry.payload.consumed = Math.floor(Date.now() / 1000)
      },
      destroy: async (id: string) => { store.delete(prefix + id) },
      revokeByGrantId: async (grantId: string) => {
        for (const [key, entry] of store) if (key.startsWith(prefix) && entry.payload.grantId === grantId) store.delete(key)
      },
    }
  }
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${String(c.charCodeAt(0))};`)
}

/** Plain pages for the person's side of the device flow, with stable markers for approveDevice(). */
const devicePages = {
  userCodeInputSource: async (ctx: { body: string }, form: string, _out: unknown, error?: Error) => {
    const problem = error === undefined ? '' : `<p class="error">${escapeHtml(error.name)}</p>`
    ctx.body = `<!DOCTYPE html><title>Device sign-in</title>${problem}${form}`
  },
  userCodeConfirmSource: async (ctx: { body: string }, form: string) => {
    ctx.body = `<!DOCTYPE html><title>Confirm device</title>${form}`
  },
  successSource: async (ctx: { body: string }) => {
    ctx.body = '<!DOCTYPE html><title>Device sign-in complete</title><p id="device-success">Signed in</p>'
  },
}

interface TokenResponse {
  access_token: string
}

class RunningProvider implements TestProvider {
  readonly issuer: string
  readonly audience: string
  readonly scopes: string[]
  readonly resources: { jwt: string, opaque: string }
  readonly client: TestClient
  readonly apiClient: TestClient
  readonly deviceClient = { id: 'mrmat-cli' }
  readonly serverErrors: Error[] = []
  readonly #accessTokenTTL: number
  readonly #clients: TestClientOptions[]
  readonly #store = new Map<string, Stored>()
  readonly #cookieKeys = [randomBytes(32).toString('hex')]
  readonly #counts = new Map<string, number>()
  /** Signing keys: the first signs, all are published. */
  #published: JWK[] = []
  #previous: JWK | undefined
  readonly #borrowed: PooledKey[] = []
  #handler: RequestListener | undefined
  #closed = false

  constructor(
    readonly oidc: OidcModule,
    readonly server: Server,
    readonly port: number,
    options: TestProviderOptions,
  ) {
    this.issuer = `http://127.0.0.1:${port}`
    this.audience = options.audience ?? DEFAULT_AUDIENCE
    this.scopes = [...(options.scopes ?? DEFAULT_SCOPES)]
    this.resources = { jwt: resourceIndicator('jwt', this.audience), opaque: resourceIndicator('opaque', this.audience) }
    this.#accessTokenTTL = options.accessTokenTTL ?? 300
    const secret = () => randomBytes(16).toString('hex')
    this.client = { id: 'test-client', secret: secret() }
    this.apiClient = { id: 'test-api-server', secret: secret() }
    this.#clients = [{ ...this.client, preferredUsername: CLIENT_DISPLAY_NAME }, this.apiClient, ...(options.clients ?? [])]
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.headers[OWN_REQUEST] === undefined) {
        const path = new URL(req.url ?? '/', this.issuer).pathname
        this.#counts.set(path, (this.#counts.get(path) ?? 0) + 1)
      }
      // No keep-alive: a socket pooled by a client would outlive stop() and fail with 'other side closed' rather than
      // the refused connection of a provider that is down.
      res.setHeader('connection', 'close')
      if (this.#handler === undefined) {
        res.writeHead(503).end()
        return
      }
      this.#handler(req, res)
    })
  }

  get kid(): string {
    return this.#signingJwk('current').kid ?? ''
  }

  /** Builds a Provider for the given keys and routes requests to it: keys cannot change inside a running Provider. */
  async useKeys(keys: JWK[]): Promise<void> {
    this.#published = keys
    const provider = await withoutProductionWarnings(() => new this.oidc.Provider(this.issuer, this.#configuration(keys)))
    provider.on('server_error', (_ctx, error) => {
      this.serverErrors.push(error)
      console.error('test OpenID provider server_error:', error)
    })
    this.#handler = provider.callback()
  }

  async borrowKey(): Promise<JWK> {
    const key = borrowKey()
    this.#borrowed.push(key)
    return key.jwk
  }

  #configuration(keys: JWK[]): Record<string, unknown> {
    const { InvalidTarget } = this.oidc.errors
    const tokenTTL = (_ctx: unknown, token: { resourceServer?: { accessTokenTTL?: number } }) =>
      token.resourceServer?.accessTokenTTL ?? this.#accessTokenTTL
    return {
      jwks: { keys },
      adapter: memoryAdapter(this.#store),
      cookies: { keys: this.#cookieKeys },
      clients: [
        ...this.#clients.map(({ id, secret }) => ({
          client_id: id, client_secret: secret, grant_types: ['client_credentials'], response_types: [], redirect_uris: [],
        })),
        {
          client_id: this.deviceClient.id,
          token_endpoint_auth_method: 'none',
          grant_types: [DEVICE_CODE_GRANT, 'refresh_token'],
          response_types: [],
          redirect_uris: [],
        },
      ],
      claims: { openid: ['sub'], profile: ['name', 'preferred_username'] },
      findAccount: async (_ctx: unknown, sub: string) => ({
        accountId: sub,
        claims: async () => ({ sub, preferred_username: sub, name: sub }),
      }),
      // A person's login (device flow), or the client's display name (client credentials).
      extraTokenClaims: async (_ctx: unknown, token: { clientId: string, accountId?: string }) => {
        const preferredUsername = token.accountId ?? this.#clients.find((c) => c.id === token.clientId)?.preferredUsername
        return preferredUsername === undefined ? undefined : { preferred_username: preferredUsername }
      },
      features: {
        devInteractions: { enabled: true },
        clientCredentials: { enabled: true },
        introspection: {
          enabled: true,
          allowedPolicy: async (_ctx: unknown, caller: { clientId: string }) => caller.clientId === this.apiClient.id,
        },
        revocation: {
          enabled: true,
          allowedPolicy: async (_ctx: unknown, caller: { clientId: string }, token: { clientId: string }) =>
            caller.clientId === token.clientId,
        },
        deviceFlow: { enabled: true, ...devicePages },
        resourceIndicators: {
          enabled: true,
          defaultResource: async () => this.resources.jwt,
          // Device-flow tokens are then JWTs for the API rather than opaque tokens for userinfo.
          useGrantedResource: async () => true,
          getResourceServerInfo: async (_ctx: unknown, indicator: string, client: { clientId: string }) => {
            const parsed = parseResourceIndicator(indicator)
            if (parsed === undefined) throw new InvalidTarget()
            const allowed = this.#clients.find((c) => c.id === client.clientId)?.scopes ?? this.scopes
            return {
              audience: parsed.audience,
              scope: this.scopes.filter((scope) => allowed.includes(scope)).join(' '),
              accessTokenFormat: parsed.format,
              accessTokenTTL: this.#accessTokenTTL,
              jwt: { sign: { alg: 'RS256' } },
            }
          },
        },
      },
      // Our own values silence the notices oidc-provider prints for each default it uses.
      ttl: {
        AccessToken: tokenTTL,
        ClientCredentials: tokenTTL,
        AuthorizationCode: 60,
        DeviceCode: 600,
        IdToken: 3600,
        RefreshToken: 86_400,
        Interaction: 600,
        Session: 3600,
        Grant: 86_400,
      },
      renderError: async (ctx: { type: string, body: string }, out: Record<string, string>) => {
        ctx.type = 'html'
        ctx.body = `<!DOCTYPE html><title>Error</title><pre class="error">${escapeHtml(JSON.stringify(out))}</pre>`
      },
    }
  }

  #signingJwk(which: 'current' | 'previous'): JWK {
    const jwk = which === 'current' ? this.#published[0] : this.#previous
    if (jwk === undefined) throw new Error(`the test provider has no ${which} signing key; rotateKeys() first`)
    return jwk
  }

  /** A request of the fixture's own, left out of requests(). */
  async ownFetch(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers)
    headers.set(OWN_REQUEST, '1')
    return fetch(new URL(path, this.issuer), { ...init, headers })
  }

  async #clientCredentials(format: 'jwt' | 'opaque', request: TokenRequest): Promise<string> {
    const client = request.client ?? this.client
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      resource: resourceIndicator(format, request.audience ?? this.audience),
    })
    const scope = request.scope ?? this.scopes.join(' ')
    if (scope !== '') form.set('scope', scope)
    const res = await this.ownFetch('/token', { method: 'POST', headers: { authorization: basicAuth(client) }, body: form })
    if (!res.ok) throw new Error(`the test provider refused a token to ${client.id}: ${String(res.status)} ${await res.text()}`)
    return (await res.json() as TokenResponse).access_token
  }

  async jwt(request: TokenRequest = {}): Promise<string> {
    return this.#clientCredentials('jwt', request)
  }

  async opaque(request: TokenRequest = {}): Promise<string> {
    return this.#clientCredentials('opaque', request)
  }

  async revoke(token: string, client: TestClient = this.client): Promise<void> {
    const res = await this.ownFetch('/token/revocation', {
      method: 'POST',
      headers: { authorization: basicAuth(client) },
      body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
    })
    if (!res.ok) throw new Error(`the test provider refused to revoke: ${String(res.status)} ${await res.text()}`)
  }

  async sign(payload: Record<string, unknown> = {}, options: SignOptions = {}): Promise<string> {
    const { key = 'current' } = options
    const named = key === 'current' || key === 'previous' ? this.#signingJwk(key) : undefined
    const alg = typeof options.header?.alg === 'string' ? options.header.alg : 'RS256'
    const header = { typ: 'at+jwt', kid: named?.kid ?? this.kid, ...options.header, alg }
    const now = Math.floor(Date.now() / 1000)
    const claims = {
      iss: this.issuer,
      aud: this.audience,
      sub: this.client.id,
      client_id: this.client.id,
      scope: this.scopes.join(' '),
      preferred_username: CLIENT_DISPLAY_NAME,
      jti: randomBytes(12).toString('base64url'),
      iat: now,
      exp: now + this.#accessTokenTTL,
      ...payload,
    }
    const signingKey = named === undefined ? key as Exclude<SigningKey, 'current' | 'previous'> : await importJWK(named, alg)
    // Members given as undefined are dropped when jose serialises the header and payload.
    return new SignJWT(claims).setProtectedHeader(header).sign(signingKey)
  }

  publicJwks(): { keys: JWK[] } {
    return { keys: this.#published.map(publicPart) }
  }

  privateJwk(which: 'current' | 'previous' = 'current'): JWK {
    return { ...this.#signingJwk(which) }
  }

  async rotateKeys(options: { dropOld?: boolean } = {}): Promise<string> {
    const fresh = await this.borrowKey()
    this.#previous = this.#signingJwk('current')
    await this.useKeys(options.dropOld === true ? [fresh] : [fresh, ...this.#published])
    return this.kid
  }

  async stop(): Promise<void> {
    if (!this.server.listening) return
    const closed = new Promise<void>((resolve, reject) => {
      this.server.close((error) => { if (error === undefined) resolve(); else reject(error) })
    })
    // Requests in flight end now, as when the provider goes down.
    this.server.closeAllConnections()
    await closed
  }

  async start(): Promise<void> {
    if (this.#closed) throw new Error('the test provider is closed')
    if (this.server.listening) return
    await listen(this.server, this.port)
  }

  requests(path: string): number {
    return this.#counts.get(path) ?? 0
  }

  resetRequestCounts(): void {
    this.#counts.clear()
  }

  async writeClientSecrets(dir: string, options: { redirectUris?: string[] } = {}): Promise<string> {
    const res = await this.ownFetch('/.well-known/openid-configuration')
    const discovery = await res.json() as Record<string, string>
    const secrets = {
      web: {
        client_id: this.apiClient.id,
        client_secret: this.apiClient.secret,
        issuer: discovery.issuer,
        auth_uri: discovery.authorization_endpoint,
        token_uri: discovery.token_endpoint,
        userinfo_uri: discovery.userinfo_endpoint,
        token_introspection_uri: discovery.introspection_endpoint,
        redirect_uris: options.redirectUris ?? [],
      },
    }
    const path = join(dir, 'client_secrets.json')
    await writeFile(path, `${JSON.stringify(secrets, null, 2)}\n`)
    return path
  }

  async close(): Promise<void> {
    this.#closed = true
    await this.stop()
    for (const key of this.#borrowed.splice(0)) key.lent = false
  }
}

/**
 * Resource indicators must be absolute URIs and the API's audience is a plain name, so the two differ. oidc-provider
 * picks the token format per resource server (accessTokenFormat), not per client: a second indicator for the same
 * audience gives opaque tokens, so any client can have either kind.
 */
function resourceIndicator(format: 'jwt' | 'opaque', audience: string): string {
  return `urn:test-provider:${format}:${encodeURIComponent(audience)}`
}

function parseResourceIndicator(indicator: string): { format: 'jwt' | 'opaque', audience: string } | undefined {
  const match = /^urn:test-provider:(jwt|opaque):(.+)$/.exec(indicator)
  if (match?.[1] === undefined || match[2] === undefined) return undefined
  return { format: match[1] as 'jwt' | 'opaque', audience: decodeURIComponent(match[2]) }
}

function basicAuth({ id, secret }: TestClient): string {
  // RFC 6749 §2.3.1: form-encode before base64.
  const encode = (value: string) => encodeURIComponent(value).replace(/%20/g, '+')
  return `Basic ${Buffer.from(`${encode(id)}:${encode(secret)}`).toString('base64')}`
}

async function listen(server: Server, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
}

/**
 * A real oidc-provider on 127.0.0.1 with client-credentials JWT and opaque access tokens for the API, introspection,
 * revocation and the device flow; closed after the test. Each call gives a provider with its own port, keys and secrets.
 */
export async function startTestProvider(t: Tap, options: TestProviderOptions = {}): Promise<TestProvider> {
  const oidc = await loadOidcProvider()
  const server = createServer()
  await listen(server, 0)
  const provider = new RunningProvider(oidc, server, (server.address() as AddressInfo).port, options)
  t.teardown(() => provider.close())
  await provider.useKeys([await provider.borrowKey()])
  return provider
}

/** A person's browser, reduced to what the device flow needs: cookies and manual redirects. */
class Browser {
  readonly #cookies = new Map<string, string>()

  constructor(readonly provider: TestProvider) {}

  async request(url: string, form?: Record<string, string>): Promise<{ res: Response, url: URL, body: string }> {
    const target = new URL(url, this.provider.issuer)
    const res = await fetch(target, {
      method: form === undefined ? 'GET' : 'POST',
      redirect: 'manual',
      headers: {
        [OWN_REQUEST]: '1',
        cookie: [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; '),
      },
      ...(form === undefined ? {} : { body: new URLSearchParams(form) }),
    })
    for (const cookie of res.headers.getSetCookie()) {
      const [pair = '', ...attributes] = cookie.split(';')
      const separator = pair.indexOf('=')
      const name = pair.slice(0, separator).trim()
      const expired = attributes.some((a) => /^\s*expires=Thu, 01 Jan 1970/i.test(a))
      if (expired) this.#cookies.delete(name)
      else this.#cookies.set(name, pair.slice(separator + 1).trim())
    }
    return { res, url: target, body: await res.text() }
  }

  /** Follows redirects from a response to the page they end on. */
  async follow(page: { res: Response, url: URL, body: string }): Promise<{ res: Response, url: URL, body: string }> {
    let current = page
    for (let hops = 0; current.res.status >= 300 && current.res.status < 400; hops++) {
      const location = current.res.headers.get('location')
      if (location === null || hops > 10) throw new Error(`device flow: stuck at ${current.url.href} (${String(current.res.status)})`)
      current = await this.request(new URL(location, current.url).href)
    }
    return current
  }

  /** Opens /device and submits the user code, confirmed or aborted. */
  async submitUserCode(userCode: string, choice: { confirm: 'yes' } | { abort: 'yes' }): Promise<{ res: Response, url: URL, body: string }> {
    const input = await this.request('/device')
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(input.body)?.[1]
    if (xsrf === undefined) throw new Error(`device flow: no xsrf field on /device: ${input.body}`)
    return this.request('/device', { xsrf, user_code: userCode, ...choice })
  }
}

/**
 * The person's side of the device flow with plain HTTP: enters the user code at /device, signs in as `login` (any
 * name is an account with preferred_username and name = login) and consents to everything asked for.
 */
export async function approveDevice(provider: TestProvider, userCode: string, login: string): Promise<void> {
  const browser = new Browser(provider)
  let page = await browser.follow(await browser.submitUserCode(userCode, { confirm: 'yes' }))
  for (let step = 0; page.url.pathname.startsWith('/interaction/'); step++) {
    if (page.res.status !== 200 || step > 3) throw new Error(`device flow: unexpected interaction page ${String(page.res.status)}: ${page.body}`)
    const form: Record<string, string> = page.body.includes('name="login"') ? { prompt: 'login', login, password: 'any' } : { prompt: 'consent' }
    page = await browser.follow(await browser.request(page.url.pathname, form))
  }
  if (!page.body.includes('id="device-success"')) throw new Error(`device flow: sign-in did not complete: ${page.body}`)
}

/** The person aborts at the confirmation step: the device's token request then fails with access_denied. */
export async function denyDevice(provider: TestProvider, userCode: string): Promise<void> {
  const browser = new Browser(provider)
  const page = await browser.submitUserCode(userCode, { abort: 'yes' })
  if (!page.body.includes('AbortedError')) throw new Error(`device flow: abort not acknowledged: ${page.body}`)
}
