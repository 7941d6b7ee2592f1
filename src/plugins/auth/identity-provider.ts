import { createPublicKey, type JsonWebKey } from 'node:crypto'
import buildGetJwks, { type GetJwks } from 'get-jwks'
import { Agent } from 'undici'
import type { FastifyBaseLogger } from 'fastify'
import { codedError } from '../../lib/errors.js'
import type { AuthObserver } from '../../lib/observability.js'
import type { AuthSettings } from './settings.js'

/** The provider cannot be reached (or has not been yet): the client should retry later (503). */
export const ProviderUnavailableError = codedError('MRMAT_IDENTITY_PROVIDER_UNAVAILABLE', { statusCode: 503 })

/** The provider refused to introspect the token itself (400: malformed, unknown kind): the token is bad (401). */
export const TokenRefusedError = codedError('MRMAT_TOKEN_REFUSED_BY_PROVIDER', { statusCode: 401 })

/** The token names a key the provider does not publish: the token is not to be trusted (401). */
export const UnknownKeyError = codedError('MRMAT_UNKNOWN_SIGNING_KEY', { statusCode: 401 })

export interface ProviderTimings {
  /** Milliseconds one request to the provider may take. */
  fetchTimeout: number
  /** Milliseconds a fetched key is trusted before it is fetched again (kept stale while unreachable). */
  keyCacheTtl: number
  /**
   * Least milliseconds between two fetches of the key set for kids not seen before: a request naming one waits for
   * the next fetch (at most this long) and is judged by it.
   */
  keySetInterval: number
  /** Discovery retries back off from the first to the second number of milliseconds. */
  retryDelay: [number, number]
}

export const DEFAULT_TIMINGS: ProviderTimings = {
  fetchTimeout: 5_000,
  keyCacheTtl: 10 * 60_000,
  keySetInterval: 1_000,
  retryDelay: [1_000, 30_000],
}


interface Metadata {
  jwksUri: string
  introspectionEndpoint: string | undefined
}

interface DiscoveryDocument {
  issuer?: unknown
  jwks_uri?: unknown
  introspection_endpoint?: unknown
}

/**
 * The identity provider as the resource server sees it: discovery (retried in the background until it
 * answers), its signing keys through get-jwks, and token introspection.
 */
export class IdentityProvider {
  private metadata: Metadata | undefined
  private jwks: GetJwks | undefined
  private jwksDomain = ''
  private readonly dispatcher: Agent
  private retryTimer: NodeJS.Timeout | undefined
  private closed = false
  private discovering: Promise<void> | undefined
  /** Discovery's attempt while one is in flight (it never rejects): requests that come meanwhile wait for it. */
  private attempt: Promise<unknown> | undefined
  /** The kids of the freshest key set fetched, and when that fetch began. */
  private published: { kids: Set<string>, at: number } | undefined
  private keySetFetch: { at: number, done: Promise<void>, settled: boolean } | undefined
  private readonly pems = new WeakMap<object, string>()
  /** get-jwks caches a key as the promise of its fetch: what each such promise resolved to, for knownPublicKey. */
  private readonly settled = new WeakMap<object, Record<string, unknown>>()

  constructor(
    readonly settings: AuthSettings,
    private readonly log: FastifyBaseLogger,
    private readonly timings: ProviderTimings = DEFAULT_TIMINGS,
    private readonly observer?: AuthObserver,
  ) {
    // get-jwks ignores its timeout option and uses the global fetch: bound it through the dispatcher.
    this.dispatcher = new Agent({
      connect: { timeout: timings.fetchTimeout },
      headersTimeout: timings.fetchTimeout,
      bodyTimeout: timings.fetchTimeout,
    })
  }

  /** Whether the provider's metadata is known, so that tokens can be verified. */
  get ready(): boolean {
    return this.metadata !== undefined
  }

  /**
   * Whether the provider's metadata is known, once the discovery fetch in flight (if any) has ended. A request that
   * comes while a server just started is still reaching the provider waits for that fetch (bounded by the fetch
   * timeout) rather than being sent away with a 503; it causes no fetch of its own, and between failed attempts it is
   * answered at once.
   */
  async reached(): Promise<boolean> {
    if (this.metadata === undefined) await this.attempt
    return this.metadata !== undefined
  }

  /** Starts discovery; it retries in the background, so the server starts while the provider is down. */
  start(): Promise<void> {
    this.discovering ??= this.discover()
    return this.discovering
  }

  async close(): Promise<void> {
    this.closed = true
    clearTimeout(this.retryTimer)
    await this.dispatcher.close()
  }

  private async discover(): Promise<void> {
    let [delay] = this.timings.retryDelay
    for (;;) {
      const attempt = this.fetchMetadata().then((metadata) => { this.useMetadata(metadata) })
      this.attempt = attempt.catch(() => undefined)
      try {
        await attempt
        this.log.info({ issuer: this.settings.issuer, jwksUri: this.metadata?.jwksUri }, 'identity provider discovered')
        return
      } catch (error) {
        if (this.isClosed()) return
        this.log.warn(
          { issuer: this.settings.issuer, err: error, retryInMs: delay },
          'identity provider discovery failed; retrying',
        )
        if (delay === this.timings.retryDelay[0]) this.warnUnlogged(error as Error)
      } finally {
        this.attempt = undefined
      }
      await new Promise<void>((resolve) => {
        this.retryTimer = setTimeout(resolve, delay)
        this.retryTimer.unref()
      })
      if (this.isClosed()) return
      delay = Math.min(delay * 2, this.timings.retryDelay[1])
    }
  }

  /**
   * A host app's Fastify() has no logger unless given one, and would start with an unreachable provider without a
   * word: the first failure is then a process warning on stderr. A logger set to a level above warn is respected.
   */
  private warnUnlogged(error: Error): void {
    if (typeof (this.log as { isLevelEnabled?: unknown }).isLevelEnabled === 'function') return
    const code = (error.cause as { code?: unknown } | undefined)?.code
    const reason = typeof code === 'string' ? `${error.message}: ${code}` : error.message
    process.emitWarning(
      `the identity provider ${this.settings.issuer} cannot be reached (${reason}): routes that need a token `
      + 'answer 503 until it can; retrying in the background',
      { code: 'MRMAT_IDENTITY_PROVIDER_UNREACHABLE' },
    )
  }

  private isClosed(): boolean {
    return this.closed
  }

  private async fetchMetadata(): Promise<Metadata> {
    const { settings } = this
    // Nothing to discover when both endpoints are configured.
    if (settings.jwksUri !== undefined && settings.introspectionEndpoint !== undefined) {
      return { jwksUri: settings.jwksUri, introspectionEndpoint: settings.introspectionEndpoint }
    }
    const url = `${settings.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`
    const response = await this.fetch(url)
    if (!response.ok) throw new Error(`discovery at ${url} answered ${response.status}`)
    const document = await jsonOf(response, `discovery at ${url}`) as DiscoveryDocument
    // OpenID Connect Discovery 1.0 §4.3: the document must name the issuer it was fetched for.
    if (document.issuer !== settings.issuer) {
      throw new Error(`discovery at ${url} names the issuer ${JSON.stringify(document.issuer)}, not ${settings.issuer}`)
    }
    const jwksUri = settings.jwksUri ?? (typeof document.jwks_uri === 'string' ? document.jwks_uri : undefined)
    if (jwksUri === undefined) throw new Error(`discovery at ${url} has no jwks_uri`)
    const introspectionEndpoint = settings.introspectionEndpoint
      ?? (typeof document.introspection_endpoint === 'string' ? document.introspection_endpoint : undefined)
    return { jwksUri, introspectionEndpoint }
  }

  private useMetadata(metadata: Metadata): void {
    // get-jwks builds the JWKS URL as <domain><jwksPath> and only fetches from allowed domains: give it
    // the jwks_uri split that way, so that it never fetches keys from where a token's iss points.
    const url = new URL(metadata.jwksUri)
    this.jwksDomain = `${url.origin}/`
    this.jwks = buildGetJwks({
      max: 100,
      ttl: this.timings.keyCacheTtl,
      issuersWhitelist: [this.jwksDomain],
      jwksPath: `${url.pathname.slice(1)}${url.search}`,
      // undici's Agent is the dispatcher Node's fetch runs on, though its typings are a copy.
      fetchOptions: { dispatcher: this.dispatcher as unknown as NonNullable<RequestInit['dispatcher']> },
    })
    this.metadata = metadata
  }

  private fetch(url: string, init: Omit<RequestInit, 'dispatcher'> = {}): Promise<Response> {
    return fetch(url, { ...init, dispatcher: this.dispatcher as unknown as NonNullable<RequestInit['dispatcher']> })
  }

  /**
   * The PEM public key of a token with this header when get-jwks holds it fresh (inside its TTL) and its fetch has
   * settled, at once; undefined when it must be asked for (publicKey), which then gives the same key. A token whose key
   * is known is verified without waiting for a promise, which lets the verifier make its errors without stack traces.
   */
  knownPublicKey(header: { kid?: unknown, alg?: unknown }): string | undefined {
    const { jwks } = this
    const { kid, alg } = header
    if (jwks === undefined || typeof kid !== 'string' || kid === '' || typeof alg !== 'string') return undefined
    const cached = jwks.cache.get(jwks.generateCacheKey(alg, kid, this.jwksDomain)) as object | undefined
    const jwk = cached === undefined ? undefined : this.settled.get(cached)
    return jwk === undefined ? undefined : this.pem(jwk)
  }

  /** The PEM public key that signed a token with this header. */
  async publicKey(header: { kid?: unknown, alg?: unknown }): Promise<string> {
    if (this.jwks === undefined) await this.reached()
    const { jwks } = this
    if (jwks === undefined) throw new ProviderUnavailableError('The identity provider has not been reached yet')
    const { kid, alg } = header
    if (typeof kid !== 'string' || kid === '' || typeof alg !== 'string') {
      throw new UnknownKeyError('the token names no key (kid)')
    }
    const domain = this.jwksDomain
    const cacheKey = jwks.generateCacheKey(alg, kid, domain)
    // A key past its TTL is still known: refetching it is routine, not a guess at a new kid.
    const known = jwks.cache.get(cacheKey) !== undefined || jwks.staleCache.get(cacheKey) !== undefined
    if (!known) await this.requirePublished(kid)
    // get-jwks fetches the set when the key is not fresh in its cache.
    const fetching = jwks.cache.get(cacheKey) === undefined
    let jwk: Record<string, unknown>
    try {
      // A promise, or the key itself when it was set below.
      const pending: Promise<Record<string, unknown>> | Record<string, unknown> = jwks.getJwk({ domain, alg, kid })
      jwk = await pending
      this.settled.set(pending, jwk)
      if (fetching) this.observer?.jwksFetched(true)
    } catch (error) {
      const code = (error as { code?: string }).code
      // The kid is published (or was): what is missing is a key of that kid for this alg.
      if (code === 'JWK_NOT_FOUND' || code === 'NO_JWKS') {
        if (fetching) this.observer?.jwksFetched(true)
        throw new UnknownKeyError(`the key ${kid} does not sign ${alg}`)
      }
      if (fetching) this.observer?.jwksFetched(false)
      this.log.warn({ err: error }, 'cannot fetch the identity provider\'s keys')
      throw new ProviderUnavailableError('The identity provider\'s keys cannot be fetched')
    }
    // get-jwks answers from its stale cache when the refetch failed, and forgets the key: keep it for
    // another TTL, so that an unreachable provider costs one attempt per TTL, not one per request.
    if (jwks.cache.get(cacheKey) === undefined) {
      jwks.cache.set(cacheKey, jwk as never)
      this.settled.set(jwk, jwk)
    }
    return this.pem(jwk)
  }

  /**
   * A kid not seen before is judged by a key set fetched after the request asked: never by another caller's failed
   * look-up, so that strangers sending made-up kids cannot get a real key refused. Fetches of the set for such kids
   * run one at a time and at least keySetInterval apart; every request waiting shares the next one. A fetch that was
   * in flight when the request came and could not reach the provider fails the request too (503): the next one would
   * most likely fail as well, a fetch timeout later.
   */
  private async requirePublished(kid: string): Promise<void> {
    if (this.published?.kids.has(kid) !== true) await this.keySetSince(Date.now())
    if (this.published?.kids.has(kid) !== true) {
      throw new UnknownKeyError('the identity provider publishes no such key')
    }
  }

  /** Resolves once a fetch of the key set that began at or after `since` has ended. */
  private async keySetSince(since: number): Promise<void> {
    for (;;) {
      const current = this.keySetFetch
      if (current !== undefined && current.at >= since) {
        await current.done
        return
      }
      if (current !== undefined) {
        // One that began before the request: its key set may predate the kid, so wait for it and start the next. If
        // it was still in flight and failed, the provider is out of reach now: that is this request's answer too.
        if (current.settled) await current.done.catch(() => undefined)
        else await current.done
        if (this.keySetFetch !== current) continue
      }
      const wait = (this.keySetFetch?.at ?? -Infinity) + this.timings.keySetInterval - Date.now()
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait).unref())
      if (this.keySetFetch !== current) continue
      const at = Date.now()
      const fetch = { at, done: this.fetchKeySet(at), settled: false }
      const settle = () => { fetch.settled = true }
      fetch.done.then(settle, settle)
      this.keySetFetch = fetch
    }
  }

  private async fetchKeySet(at: number): Promise<void> {
    const uri = this.metadata?.jwksUri
    if (uri === undefined) return
    try {
      const response = await this.fetch(uri, { headers: { accept: 'application/json' } })
      if (!response.ok) throw new Error(`${uri} answered ${String(response.status)}`)
      const body = await jsonOf(response, uri) as { keys?: unknown }
      if (!Array.isArray(body.keys)) throw new Error(`${uri} holds no keys`)
      // RFC 7517 §5: members that are not keys one understands are ignored; a set left with none is broken.
      const keys = (body.keys as unknown[]).filter((key): key is Record<string, unknown> => typeof key === 'object'
        && key !== null && typeof (key as Record<string, unknown>).kid === 'string')
      if (keys.length === 0) throw new Error(`${uri} holds no key with a kid`)
      this.observer?.jwksFetched(true)
      this.published = { kids: new Set(keys.map((key) => key.kid as string)), at }
      // The keys themselves go to get-jwks' cache, so that a new kid costs one fetch, not two.
      const { jwks } = this
      for (const key of keys) {
        if (jwks !== undefined && typeof key.alg === 'string') {
          jwks.cache.set(jwks.generateCacheKey(key.alg, key.kid as string, this.jwksDomain), key as never)
        }
      }
    } catch (error) {
      this.observer?.jwksFetched(false)
      this.log.warn({ err: error }, 'cannot fetch the identity provider\'s key set')
      // An unknown kid cannot be judged while the provider is out of reach: 503, not 401.
      throw new ProviderUnavailableError('The identity provider\'s keys cannot be fetched')
    }
  }

  private pem(jwk: Record<string, unknown>): string {
    let pem = this.pems.get(jwk)
    if (pem === undefined) {
      if (jwk.use !== undefined && jwk.use !== 'sig') throw new UnknownKeyError('the key is not a signing key')
      // Node reads RSA, EC and OKP (Ed25519) keys alike; jwk-to-pem, which get-jwks uses, has no OKP.
      pem = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' })
        .export({ type: 'spki', format: 'pem' })
        .toString()
      this.pems.set(jwk, pem)
    }
    return pem
  }

  /** Whether opaque tokens can be checked: an introspection endpoint and client credentials. */
  get canIntrospect(): boolean {
    return this.metadata?.introspectionEndpoint !== undefined
      && this.settings.clientId !== undefined && this.settings.clientSecret !== undefined
  }

  /** RFC 7662 introspection, authenticated as the server's own client (client_secret_basic). */
  async introspect(token: string): Promise<Record<string, unknown>> {
    const endpoint = this.metadata?.introspectionEndpoint
    const { clientId, clientSecret } = this.settings
    if (endpoint === undefined || clientId === undefined || clientSecret === undefined) {
      throw new ProviderUnavailableError(
        'Opaque tokens cannot be introspected: no introspection endpoint or client credentials',
      )
    }
    const basic = Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')
    let response: Response
    try {
      response = await this.fetch(endpoint, {
        method: 'POST',
        headers: {
          authorization: `Basic ${basic}`,
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        },
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
      })
    } catch (error) {
      this.observer?.introspected('error')
      this.log.warn({ err: error }, 'token introspection failed')
      throw new ProviderUnavailableError('The identity provider cannot be reached for introspection')
    }
    if (response.status === 400) {
      this.observer?.introspected('refused')
      await response.body?.cancel()
      throw new TokenRefusedError('The identity provider refused to introspect the token')
    }
    if (!response.ok) {
      // 401 or 403 mean the provider does not accept this server's own credentials: a configuration to fix.
      this.observer?.introspected('error')
      this.log.error({ status: response.status }, 'token introspection refused')
      await response.body?.cancel()
      throw new ProviderUnavailableError(`The identity provider answered introspection with ${response.status}`)
    }
    let claims: Record<string, unknown>
    try {
      claims = await response.json() as Record<string, unknown>
    } catch {
      this.observer?.introspected('error')
      throw new ProviderUnavailableError('The identity provider answered introspection with something other than JSON')
    }
    this.observer?.introspected(claims.active === true ? 'active' : 'inactive')
    return claims
  }
}

/**
 * The body as JSON, or an error that says where the garbage came from (a bare SyntaxError does not; the log shows its
 * message after ours, as the cause).
 */
async function jsonOf(response: Response, where: string): Promise<unknown> {
  const text = await response.text()
  try {
    return JSON.parse(text)
  } catch (error) {
    throw new Error(`${where} answered no JSON`, { cause: error })
  }
}
