import fp from 'fastify-plugin'
import fastifyJwt from '@fastify/jwt'
import { LRUCache } from 'lru-cache'
import type { FastifyInstance, FastifyRequest, preHandlerHookHandler, RouteOptions } from 'fastify'
import { HttpProblem, ProblemTypes } from '../problem.js'
import { identityFromClaims, type Identity } from './identity.js'
import {
  DEFAULT_TIMINGS,
  IdentityProvider,
  ProviderUnavailableError,
  UnknownKeyError,
  type ProviderTimings,
} from './provider.js'
import type { AuthSettings } from './settings.js'

/** The OpenAPI security scheme name a route puts in `schema.security` to require a bearer token. */
export const BEARER_AUTH = 'bearerAuth'

/** Signature algorithms accepted: asymmetric only, so never `none` and never HS* keyed with a public key. */
export const ALGORITHMS = ['RS256', 'PS256', 'ES256', 'EdDSA'] as const

// Longer than any real access token (Entra ID's run to a few KB), short enough to refuse junk cheaply.
const MAX_TOKEN_LENGTH = 8192
const TOKEN_SYNTAX = /^[A-Za-z0-9\-._~+/]+=*$/
const JWT_SYNTAX = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

export interface AuthPluginOptions {
  /** Undefined runs the server without authentication: protected routes answer 401. */
  settings: AuthSettings | undefined
  timings?: Partial<ProviderTimings>
  /** Verified tokens kept (bounded LRU, never past their exp). */
  tokenCacheSize?: number
  /** Longest an introspection answer is reused, in milliseconds (never past the token's exp). */
  introspectionCacheTtl?: number
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The identity provider, when authentication is configured. */
    identityProvider: IdentityProvider | null
  }
  interface FastifyRequest {
    bearerJwtVerify<T = Record<string, unknown>>(): Promise<T>
  }
}

interface Challenge {
  status: 401 | 403 | 503
  type: string
  title: string
  detail: string
  error?: 'invalid_token' | 'insufficient_scope'
  scope?: string
}

/** An RFC 6750 refusal: a problem body plus the WWW-Authenticate challenge. Never echoes the token. */
function refuse(realm: string, challenge: Challenge): HttpProblem {
  const params = [`realm="${realm}"`]
  if (challenge.error !== undefined) params.push(`error="${challenge.error}"`, `error_description="${challenge.detail.replaceAll('"', '\'')}"`)
  if (challenge.scope !== undefined) params.push(`scope="${challenge.scope}"`)
  const headers: Record<string, string> = challenge.status === 503
    ? { 'retry-after': '5' }
    : { 'www-authenticate': `Bearer ${params.join(', ')}` }
  return new HttpProblem(challenge.status, challenge.detail, { type: challenge.type, title: challenge.title, headers })
}

function invalidToken(realm: string, detail: string): HttpProblem {
  return refuse(realm, { status: 401, type: ProblemTypes.invalidToken, title: 'Invalid token', detail, error: 'invalid_token' })
}

function unavailable(detail: string): HttpProblem {
  return refuse('', { status: 503, type: ProblemTypes.providerUnavailable, title: 'Identity provider unavailable', detail })
}

/** What a verification failure tells the client: why, but nothing of the token itself. */
function jwtFailure(realm: string, error: unknown): HttpProblem {
  if (error instanceof ProviderUnavailableError) return unavailable(error.message)
  if (error instanceof UnknownKeyError) return invalidToken(realm, `The token is not signed by a key of the identity provider: ${error.message}`)
  const code = (error as { code?: unknown }).code
  if (code === 'FST_JWT_AUTHORIZATION_TOKEN_EXPIRED' || code === 'FAST_JWT_EXPIRED') return invalidToken(realm, 'The token has expired')
  if (code === 'FAST_JWT_INACTIVE') return invalidToken(realm, 'The token is not valid yet')
  if (code === 'FAST_JWT_INVALID_ALGORITHM' || code === 'FST_JWT_AUTHORIZATION_TOKEN_UNSIGNED' || code === 'FAST_JWT_MISSING_SIGNATURE') {
    return invalidToken(realm, `The token's signature algorithm is not accepted (${ALGORITHMS.join(', ')})`)
  }
  if (typeof code === 'string' && (code.startsWith('FST_JWT_') || code.startsWith('FAST_JWT_'))) {
    return invalidToken(realm, 'The token is invalid: its signature, issuer, audience or claims do not check out')
  }
  throw error
}

/**
 * The token of an `Authorization: Bearer <token>` header; '' when the scheme is Bearer but the token
 * is missing; undefined for no header or another scheme. RFC 6750 allows several spaces after Bearer.
 */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined || !/^bearer(?: |$)/i.test(header)) return undefined
  return header.slice(6).trim()
}

function bearerScopes(route: RouteOptions): string[] | undefined {
  const security = (route.schema as { security?: Record<string, string[]>[] } | undefined)?.security
  const requirement = security?.find((entry) => BEARER_AUTH in entry)
  return requirement?.[BEARER_AUTH]
}

/**
 * Bearer-token authentication as an OAuth 2.0 resource server. A route asks for it by declaring
 * `schema.security: [{ bearerAuth: [...scopes] }]`: the same declaration documents it in OpenAPI and
 * adds the verifying preHandler, so the two cannot drift apart. Register before the API plugins.
 */
async function bearerAuth(fastify: FastifyInstance, options: AuthPluginOptions): Promise<void> {
  const { settings } = options
  const realm = settings?.audience ?? 'mrmat-ts-api-fastify'
  fastify.decorateRequest('identity', null)

  const provider = settings === undefined
    ? null
    : new IdentityProvider(settings, fastify.log, { ...DEFAULT_TIMINGS, ...options.timings })
  fastify.decorate('identityProvider', provider)
  if (provider !== null && settings !== undefined) {
    await fastify.register(fastifyJwt, {
      namespace: 'bearer',
      jwtVerify: 'bearerJwtVerify',
      jwtDecode: 'bearerJwtDecode',
      jwtSign: 'bearerJwtSign',
      decoratorName: 'bearerClaims',
      secret: async (_request: FastifyRequest, token: unknown) => provider.publicKey((token as { header: Record<string, unknown> }).header),
      decode: { complete: true },
      verify: {
        // The hook has checked the header already; @fastify/jwt's own reader takes one space only.
        extractToken: (request: FastifyRequest) => bearerToken(request.headers.authorization),
        algorithms: [...ALGORITHMS],
        allowedIss: settings.issuer,
        allowedAud: settings.audience,
        requiredClaims: ['iss', 'aud', 'exp', 'sub'],
        clockTolerance: settings.clockTolerance * 1000,
      },
    })
    void provider.start()
    fastify.addHook('onClose', async () => provider.close())
  }

  const verified = new LRUCache<string, Identity>({ max: options.tokenCacheSize ?? 10_000 })
  const introspectionTtl = options.introspectionCacheTtl ?? 60_000

  /** Keeps a verified token until its exp (and no longer than `longest` ms, when given). */
  function remember(token: string, identity: Identity, exp: unknown, longest?: number): void {
    if (typeof exp !== 'number') return
    const ttl = Math.min(exp * 1000 - Date.now(), longest ?? Number.POSITIVE_INFINITY)
    if (ttl > 0) verified.set(token, identity, { ttl })
  }

  async function verifyJwt(request: FastifyRequest, token: string): Promise<Identity> {
    let claims: Record<string, unknown>
    try {
      claims = await request.bearerJwtVerify()
    } catch (error) {
      throw jwtFailure(realm, error)
    }
    const identity = identityFromClaims(claims)
    if (identity === undefined) throw invalidToken(realm, 'The token names no subject (sub)')
    remember(token, identity, claims.exp)
    return identity
  }

  async function verifyOpaque(token: string, auth: AuthSettings, idp: IdentityProvider): Promise<Identity> {
    if (!idp.ready) throw unavailable('The identity provider has not been reached yet')
    if (!idp.canIntrospect) throw invalidToken(realm, 'The token is not a JWT, and opaque tokens cannot be introspected here')
    let claims: Record<string, unknown>
    try {
      claims = await idp.introspect(token)
    } catch (error) {
      if (error instanceof ProviderUnavailableError) throw unavailable(error.message)
      throw error
    }
    if (claims.active !== true) throw invalidToken(realm, 'The token is not active')
    const now = Date.now() / 1000
    const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud]
    if (claims.iss !== undefined && claims.iss !== auth.issuer) throw invalidToken(realm, 'The token is from another issuer')
    if (claims.aud !== undefined && !audiences.includes(auth.audience)) throw invalidToken(realm, 'The token is for another audience')
    if (typeof claims.exp === 'number' && claims.exp + auth.clockTolerance < now) throw invalidToken(realm, 'The token has expired')
    // RFC 7662 makes sub optional, and providers leave it out for client-credentials tokens: the
    // client is then the caller.
    const identity = identityFromClaims({ ...claims, sub: claims.sub ?? claims.client_id })
    if (identity === undefined) throw invalidToken(realm, 'The token names no subject (sub) and no client (client_id)')
    remember(token, identity, claims.exp, introspectionTtl)
    return identity
  }

  /** The token of the request, or the refusal when there is none to check. */
  function presentedToken(request: FastifyRequest): string {
    if (settings === undefined) {
      throw refuse(realm, { status: 401, type: ProblemTypes.authNotConfigured, title: 'Authentication not configured', detail: 'This route needs a bearer token, but authentication is not configured on this server' })
    }
    const token = bearerToken(request.headers.authorization)
    if (token === undefined) {
      const inQuery = typeof request.query === 'object' && request.query !== null && 'access_token' in request.query
      const detail = inQuery
        ? 'A bearer token is required in the Authorization header; tokens in the query string are not accepted'
        : 'A bearer token is required in the Authorization header'
      throw refuse(realm, { status: 401, type: ProblemTypes.tokenRequired, title: 'Token required', detail })
    }
    return token
  }

  async function verify(request: FastifyRequest, token: string): Promise<Identity> {
    if (settings === undefined || provider === null) throw new Error('unreachable: verify without settings')
    if (token.length > MAX_TOKEN_LENGTH || !TOKEN_SYNTAX.test(token)) throw invalidToken(realm, 'The token is malformed')
    return JWT_SYNTAX.test(token) ? verifyJwt(request, token) : verifyOpaque(token, settings, provider)
  }

  function authenticate(required: string[]): preHandlerHookHandler {
    const scope = required.join(' ')
    function admit(request: FastifyRequest, identity: Identity): void {
      const missing = required.filter((s) => !identity.scopes.includes(s))
      if (missing.length > 0) {
        throw refuse(realm, {
          status: 403,
          type: ProblemTypes.insufficientScope,
          title: 'Insufficient scope',
          detail: `The token lacks the scope ${missing.join(' ')}`,
          error: 'insufficient_scope',
          scope,
        })
      }
      request.identity = identity
    }
    // Callback style, so that a token verified before (the common case) costs no promise at all.
    return function verifyBearerToken(request, _reply, done) {
      let token: string
      let cached: Identity | undefined
      try {
        token = presentedToken(request)
        cached = verified.get(token)
        if (cached !== undefined) admit(request, cached)
      } catch (error) {
        done(error as Error)
        return
      }
      if (cached !== undefined) {
        done()
        return
      }
      verify(request, token).then((identity) => {
        admit(request, identity)
        done()
      }).catch((error: unknown) => { done(error as Error) })
    }
  }

  // Fastify copies a GET route's options, hooks included, into the HEAD route it adds: check once.
  const ours = new WeakSet<object>()
  fastify.addHook('onRoute', (route) => {
    const scopes = bearerScopes(route)
    if (scopes === undefined) return
    const existing = route.preHandler === undefined ? [] : [route.preHandler].flat()
    if (existing.some((hook) => ours.has(hook))) return
    const hook = authenticate(scopes)
    ours.add(hook)
    route.preHandler = [hook, ...existing]
  })
}

export default fp(bearerAuth, { name: 'mrmat-auth', fastify: '5.x' })
