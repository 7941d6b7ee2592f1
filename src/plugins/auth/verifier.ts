import type { FastifyRequest } from 'fastify'
import { LRUCache } from 'lru-cache'
import { withoutStackTraces } from '../../lib/errors.js'
import type { HttpProblem } from '../../lib/problem.js'
import { ALGORITHMS, invalidToken, unavailable } from './challenge.js'
import { identityFromClaims, type Identity } from './identity.js'
import {
  ProviderUnavailableError, TokenRefusedError, UnknownKeyError, type IdentityProvider,
} from './identity-provider.js'
import type { AuthSettings } from './settings.js'
import { notAnAccessIntrospection, notAnAccessJwt } from './token-type.js'

// Longer than any real access token (Entra ID's run to a few KB), short enough to refuse junk cheaply.
const MAX_TOKEN_LENGTH = 8192
const TOKEN_SYNTAX = /^[A-Za-z0-9\-._~+/]+=*$/
const JWT_SYNTAX = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

/** How long a refused opaque token is remembered, so that repeating it costs no introspection. */
const REFUSED_TTL = 10_000
/** How much of a verified token's end it is found by: see cacheKey. */
const KEY_LENGTH = 48

/**
 * What a verified token is remembered under: its last characters, for a JWT the end of its signature. A map hashes a
 * string key once per string, and each request's token is a new string: a whole token (most of a kilobyte) cost more
 * than a microsecond a look-up, a tenth of what greeting v3 adds to v1. The entry holds the whole token, and a
 * look-up compares it: a token ending like a verified one is not taken for it.
 */
function cacheKey(token: string): string {
  return token.length <= KEY_LENGTH ? token : token.slice(-KEY_LENGTH)
}

interface Verified {
  token: string
  identity: Identity
}

export interface VerifierOptions {
  /** Introspections of tokens not seen before, a second on average (a burst of twice as many may pass). */
  introspectionRate?: number
  /** Verified tokens kept (bounded LRU, never past their exp). */
  tokenCacheSize?: number
  /** Longest an introspection answer is reused, in milliseconds (never past the token's exp). */
  introspectionCacheTtl?: number
}

const NOT_CHECKING_OUT = 'The token is invalid: its signature, issuer, audience or claims do not check out'

/** Whether a JWT segment is base64url-encoded JSON of an object, as its header and claims must be. */
function jsonObjectSegment(segment: string): boolean {
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'))
  } catch {
    return false
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * Whether a token of JWT syntax has a header and claims that decode to JSON objects, checked before @fastify/jwt sees
 * it. A stranger's made-up token (`a.b.c`) costs the verifier a parse error and two errors of its own, each with a
 * stack trace (three times a request without a token, measured); this refuses it first with the answer the verifier
 * gives, and the parse error it meets is made without a stack.
 */
function decodesAsJwt(token: string): boolean {
  const [header = '', claims = ''] = token.split('.', 2)
  return withoutStackTraces(() => jsonObjectSegment(header) && jsonObjectSegment(claims))
}

/** What a verification failure tells the client: why, but nothing of the token itself. */
function jwtFailure(realm: string, error: unknown): HttpProblem {
  if (error instanceof ProviderUnavailableError) return unavailable(error.message)
  if (error instanceof UnknownKeyError) {
    return invalidToken(realm, `The token is not signed by a key of the identity provider: ${error.message}`,
      'unknown_key')
  }
  const code = (error as { code?: unknown }).code
  if (code === 'FST_JWT_AUTHORIZATION_TOKEN_EXPIRED' || code === 'FAST_JWT_EXPIRED') {
    return invalidToken(realm, 'The token has expired', 'expired')
  }
  if (code === 'FAST_JWT_INACTIVE') return invalidToken(realm, 'The token is not valid yet', 'not_yet_valid')
  if (code === 'FAST_JWT_INVALID_ALGORITHM' || code === 'FST_JWT_AUTHORIZATION_TOKEN_UNSIGNED'
    || code === 'FAST_JWT_MISSING_SIGNATURE') {
    return invalidToken(realm, `The token's signature algorithm is not accepted (${ALGORITHMS.join(', ')})`,
      'algorithm')
  }
  if (typeof code === 'string' && (code.startsWith('FST_JWT_') || code.startsWith('FAST_JWT_'))) {
    return invalidToken(realm, NOT_CHECKING_OUT)
  }
  throw error
}

/**
 * Turns a bearer token into the caller's identity: a JWT through @fastify/jwt and the provider's keys, an opaque
 * token through introspection. Tokens verified once are remembered until they expire.
 */
export class TokenVerifier {
  readonly #verified: LRUCache<string, Verified>
  readonly #refused = new LRUCache<string, HttpProblem>({ max: 10_000, ttl: REFUSED_TTL })
  readonly #inFlight = new Map<string, Promise<Identity>>()
  readonly #introspectionTtl: number
  readonly #bucket: { rate: number, tokens: number, at: number }

  constructor(
    readonly settings: AuthSettings,
    readonly provider: IdentityProvider,
    readonly realm: string,
    options: VerifierOptions = {},
  ) {
    this.#verified = new LRUCache<string, Verified>({ max: options.tokenCacheSize ?? 10_000 })
    this.#introspectionTtl = options.introspectionCacheTtl ?? 60_000
    const rate = options.introspectionRate ?? 20
    this.#bucket = { rate, tokens: rate * 2, at: Date.now() }
  }

  /** Whether one more introspection fits the rate: a bucket of twice the rate, refilled continuously. */
  #mayIntrospect(): boolean {
    const bucket = this.#bucket
    const now = Date.now()
    bucket.tokens = Math.min(bucket.rate * 2, bucket.tokens + ((now - bucket.at) / 1000) * bucket.rate)
    bucket.at = now
    if (bucket.tokens < 1) return false
    bucket.tokens -= 1
    return true
  }

  /** The identity of a token verified before and not yet expired. */
  cached(token: string): Identity | undefined {
    const verified = this.#verified.get(cacheKey(token))
    return verified?.token === token ? verified.identity : undefined
  }

  async verify(request: FastifyRequest, token: string): Promise<Identity> {
    if (token.length > MAX_TOKEN_LENGTH || !TOKEN_SYNTAX.test(token)) {
      throw invalidToken(this.realm, 'The token is malformed', 'malformed')
    }
    return JWT_SYNTAX.test(token) ? this.#verifyJwt(request, token) : this.#checkOpaque(token)
  }

  /**
   * Opaque tokens cost an introspection with this server's credentials, so a stranger must not be able to make it
   * spend them freely: a token refused is remembered for a while, the same token in flight is asked about once,
   * and new tokens are introspected at a bounded rate (beyond it: 503, retry later).
   */
  async #checkOpaque(token: string): Promise<Identity> {
    const refused = this.#refused.get(token)
    if (refused !== undefined) throw refused
    const pending = this.#inFlight.get(token)
    if (pending !== undefined) return pending
    if (!this.#mayIntrospect()) {
      throw unavailable('Too many unknown tokens are being checked at the identity provider; retry later',
        'introspection_rate_limited')
    }
    const checked = this.#verifyOpaque(token).catch((error: unknown) => {
      if ((error as { statusCode?: unknown }).statusCode === 401) this.#refused.set(token, error as HttpProblem)
      throw error
    }).finally(() => this.#inFlight.delete(token))
    this.#inFlight.set(token, checked)
    return checked
  }

  /** Keeps a verified token until its exp (and no longer than `longest` ms, when given). */
  #remember(token: string, identity: Identity, exp: unknown, longest?: number): void {
    if (typeof exp !== 'number') return
    const ttl = Math.min(exp * 1000 - Date.now(), longest ?? Number.POSITIVE_INFINITY)
    if (ttl > 0) this.#verified.set(cacheKey(token), { token, identity }, { ttl })
  }

  async #verifyJwt(request: FastifyRequest, token: string): Promise<Identity> {
    if (!decodesAsJwt(token)) throw invalidToken(this.realm, NOT_CHECKING_OUT)
    let verified: { header: Record<string, unknown>, payload: Record<string, unknown> }
    try {
      // With the key known, @fastify/jwt decides before the call returns (see knownPublicKey), and the errors it and
      // fast-jwt make for a token refused (two or three, each with a stack) are made without stacks.
      verified = await withoutStackTraces(() => request.bearerJwtVerify())
    } catch (error) {
      throw jwtFailure(this.realm, error)
    }
    const { header, payload: claims } = verified
    const refusal = notAnAccessJwt(header, claims, this.settings.tokenType)
    if (refusal !== undefined) {
      throw invalidToken(this.realm, `The token is not an access token for this API: ${refusal}`, 'not_access_token')
    }
    const identity = identityFromClaims(claims)
    if (identity === undefined) throw invalidToken(this.realm, 'The token names no subject (sub)', 'no_subject')
    this.#remember(token, identity, claims.exp)
    return identity
  }

  async #verifyOpaque(token: string): Promise<Identity> {
    const { provider, realm, settings } = this
    const reached = provider.ready || await provider.reached()
    if (!reached) throw unavailable('The identity provider has not been reached yet')
    if (!provider.canIntrospect) {
      throw invalidToken(realm, 'The token is not a JWT, and opaque tokens cannot be introspected here',
        'not_introspectable')
    }
    let claims: Record<string, unknown>
    try {
      claims = await provider.introspect(token)
    } catch (error) {
      if (error instanceof ProviderUnavailableError) throw unavailable(error.message)
      if (error instanceof TokenRefusedError) throw invalidToken(realm, error.message, 'refused_by_provider')
      throw error
    }
    if (claims.active !== true) throw invalidToken(realm, 'The token is not active', 'inactive')
    const now = Date.now() / 1000
    if (claims.iss !== undefined && claims.iss !== settings.issuer) {
      throw invalidToken(realm, 'The token is from another issuer', 'invalid')
    }
    const refusal = notAnAccessIntrospection(claims, settings.audience)
    if (refusal !== undefined) {
      throw invalidToken(realm, `The token is not an access token for this API: ${refusal}`, 'not_access_token')
    }
    if (typeof claims.exp === 'number' && claims.exp + settings.clockTolerance < now) {
      throw invalidToken(realm, 'The token has expired', 'expired')
    }
    // RFC 7662 makes sub optional, and providers leave it out for client-credentials tokens: the client is then the
    // caller.
    const identity = identityFromClaims({ ...claims, sub: claims.sub ?? claims.client_id })
    if (identity === undefined) {
      throw invalidToken(realm, 'The token names no subject (sub) and no client (client_id)', 'no_subject')
    }
    this.#remember(token, identity, claims.exp, this.#introspectionTtl)
    return identity
  }
}
