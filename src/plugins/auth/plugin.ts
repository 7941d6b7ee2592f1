import fp from 'fastify-plugin'
import fastifyJwt, { type FastifyJWTOptions } from '@fastify/jwt'
import type { FastifyInstance, FastifyRequest, preHandlerHookHandler, RouteOptions } from 'fastify'
import { ALGORITHMS, insufficientScope, notConfigured, tokenRequired } from './challenge.js'
import type { Identity } from './identity.js'
import { DEFAULT_TIMINGS, IdentityProvider, type ProviderTimings } from './identity-provider.js'
import type { AuthSettings } from './settings.js'
import { TokenVerifier, type VerifierOptions } from './verifier.js'

export { ALGORITHMS } from './challenge.js'

/** The OpenAPI security scheme name a route puts in `schema.security` to require a bearer token. */
export const BEARER_AUTH = 'bearerAuth'

export interface AuthPluginOptions extends VerifierOptions {
  /** Undefined runs the server without authentication: protected routes answer 401. */
  settings: AuthSettings | undefined
  timings?: Partial<ProviderTimings>
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

/**
 * The token of an `Authorization: Bearer <token>` header; '' when the scheme is Bearer but the token is missing;
 * undefined for no header or another scheme. RFC 6750 allows several spaces after Bearer.
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

/** @fastify/jwt under its own names, so that a host app's own use of it is left alone. */
function jwtOptions(settings: AuthSettings, provider: IdentityProvider): FastifyJWTOptions {
  return {
    namespace: 'bearer',
    jwtVerify: 'bearerJwtVerify',
    jwtDecode: 'bearerJwtDecode',
    jwtSign: 'bearerJwtSign',
    decoratorName: 'bearerClaims',
    secret: async (_request: FastifyRequest, token: unknown) =>
      provider.publicKey((token as { header: Record<string, unknown> }).header),
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
  }
}

/**
 * Bearer-token authentication as an OAuth 2.0 resource server. A route asks for it by declaring
 * `schema.security: [{ bearerAuth: [...scopes] }]`: the same declaration documents it in OpenAPI and adds the
 * verifying preHandler, so the two cannot drift apart. Register before the API plugins.
 */
async function bearerAuth(fastify: FastifyInstance, options: AuthPluginOptions): Promise<void> {
  const { settings } = options
  const realm = settings?.audience ?? 'mrmat-ts-api-fastify'
  fastify.decorateRequest('identity', null)

  let verifier: TokenVerifier | undefined
  if (settings === undefined) {
    fastify.decorate('identityProvider', null)
  } else {
    const provider = new IdentityProvider(settings, fastify.log, { ...DEFAULT_TIMINGS, ...options.timings })
    fastify.decorate('identityProvider', provider)
    await fastify.register(fastifyJwt, jwtOptions(settings, provider))
    verifier = new TokenVerifier(settings, provider, realm, options)
    void provider.start()
    fastify.addHook('onClose', async () => provider.close())
  }

  /** The token of the request, or the refusal when there is none to check. */
  function presentedToken(request: FastifyRequest): string {
    if (verifier === undefined) throw notConfigured(realm)
    const token = bearerToken(request.headers.authorization)
    if (token === undefined) {
      const inQuery = typeof request.query === 'object' && request.query !== null && 'access_token' in request.query
      throw tokenRequired(realm, inQuery
        ? 'A bearer token is required in the Authorization header; tokens in the query string are not accepted'
        : 'A bearer token is required in the Authorization header')
    }
    return token
  }

  function authenticate(required: string[]): preHandlerHookHandler {
    const scope = required.join(' ')
    function admit(request: FastifyRequest, identity: Identity): void {
      const missing = required.filter((s) => !identity.scopes.includes(s))
      if (missing.length > 0) throw insufficientScope(realm, missing, scope)
      request.identity = identity
    }
    // Callback style, so that a token verified before (the common case) costs no promise at all.
    return function verifyBearerToken(request, _reply, done) {
      let token: string
      let cached: Identity | undefined
      try {
        token = presentedToken(request)
        cached = verifier?.cached(token)
        if (cached !== undefined) admit(request, cached)
      } catch (error) {
        done(error as Error)
        return
      }
      if (cached !== undefined || verifier === undefined) {
        done()
        return
      }
      verifier.verify(request, token).then((identity) => {
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
