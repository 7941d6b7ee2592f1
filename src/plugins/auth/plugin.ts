import fp from 'fastify-plugin'
import type { FastifyJWTOptions } from '@fastify/jwt'
import type {
  FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, preHandlerHookHandler, RouteOptions,
} from 'fastify'
import { ALGORITHMS, insufficientScope, notConfigured, tokenRequired } from './challenge.js'
import type { Identity } from './identity.js'
import type { IdentityProvider, ProviderTimings } from './identity-provider.js'
import type { AuthSettings } from './settings.js'
import type { TokenVerifier, VerifierOptions } from './verifier.js'
import type { AuthObserver, RequestTracer } from '../../lib/observability.js'

export { ALGORITHMS } from './challenge.js'

/** A JWT, as opposed to an opaque token: three dot-separated parts (the verifier checks the rest). */
const JWT_SHAPE = /^[^.]+\.[^.]+\.[^.]*$/

/** The OpenAPI security scheme name a route puts in `schema.security` to require a bearer token. */
export const BEARER_AUTH = 'bearerAuth'

export interface AuthPluginOptions extends VerifierOptions {
  /** Undefined runs the server without authentication: protected routes answer 401. */
  settings: AuthSettings | undefined
  timings?: Partial<ProviderTimings>
  /** Counts outcomes; by default the metrics plugin's, when it is registered before this one. */
  observer?: AuthObserver
  /** Spans for token checks; by default the tracing plugin's, when it is registered before this one. */
  tracer?: RequestTracer
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
    // A key known at once is given at once (see knownPublicKey): the token is then verified before the call returns.
    secret: (_request: FastifyRequest, token: unknown, callback: (e: Error | null, key?: string) => void) => {
      const { header } = token as { header: Record<string, unknown> }
      let known: string | undefined
      try {
        known = provider.knownPublicKey(header)
      } catch (error) {
        callback(error as Error, undefined)
        return
      }
      if (known !== undefined) {
        callback(null, known)
        return
      }
      provider.publicKey(header).then((key) => { callback(null, key) }, (error: unknown) => {
        callback(error as Error, undefined)
      })
    },
    decode: { complete: true },
    verify: {
      // The header too: its typ tells an access token from an ID token.
      complete: true,
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

  const observer = options.observer ?? (fastify.hasDecorator('metrics') ? fastify.metrics.auth : undefined)
  const tracer = options.tracer ?? (fastify.hasDecorator('requestTracer') ? fastify.requestTracer : undefined)
  let verifier: TokenVerifier | undefined
  if (settings === undefined) {
    fastify.decorate('identityProvider', null)
  } else {
    // Loaded only when a provider is configured: a server without one needs none of the token machinery.
    const [{ default: fastifyJwt }, { DEFAULT_TIMINGS, IdentityProvider }, { TokenVerifier }] = await Promise.all([
      import('@fastify/jwt'),
      import('./identity-provider.js'),
      import('./verifier.js'),
    ])
    const provider = new IdentityProvider(settings, fastify.log, { ...DEFAULT_TIMINGS, ...options.timings }, observer)
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

  /**
   * onRequest: a request without a bearer token is refused before its body is read, parsed or validated, so that a
   * stranger's junk costs next to nothing. The token itself is checked in the preHandler, as the design asks.
   */
  function requireBearerToken(request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
    try {
      presentedToken(request)
      done()
    } catch (error) {
      refused(error)
      done(error as Error)
    }
  }

  function refused(error: unknown): void {
    observer?.checked('refused', (error as { reason?: string }).reason ?? 'error')
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
      const span = tracer?.startSpan(request, 'verify bearer token')
      try {
        token = presentedToken(request)
        cached = verifier?.cached(token)
        if (verifier !== undefined) {
          observer?.cacheLookup(cached !== undefined)
          span?.setAttribute('mrmat.auth.cache_hit', cached !== undefined)
        }
        if (cached !== undefined) {
          admit(request, cached)
          observer?.checked('accepted', 'cached')
        }
      } catch (error) {
        refused(error)
        span?.end(error)
        done(error as Error)
        return
      }
      if (cached !== undefined || verifier === undefined) {
        span?.end()
        done()
        return
      }
      verifier.verify(request, token).then((identity) => {
        admit(request, identity)
        observer?.checked('accepted', JWT_SHAPE.test(token) ? 'jwt' : 'introspection')
        span?.end()
        done()
      }).catch((error: unknown) => {
        refused(error)
        span?.end(error)
        done(error as Error)
      })
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
    route.onRequest = [requireBearerToken, ...(route.onRequest === undefined ? [] : [route.onRequest].flat())]
    route.config = { ...route.config, [CHECKED]: true } as typeof route.config
  })
  guardDeclaredRoutes(fastify, realm)
}

/** Marks, in a route's config, that this plugin installed the token check on it. */
const CHECKED = Symbol.for('mrmat-ts-api-fastify.bearer-checked')
const GUARDED = Symbol.for('mrmat-ts-api-fastify.bearer-guard')

/**
 * Fails closed where the check cannot be installed: a route that declares bearerAuth before this plugin is registered,
 * while its registration is not awaited, or in a context it does not reach. A hook on the root instance (hooks there
 * reach every route, whenever it was declared) refuses such a route's requests with a 401, and logs why once.
 */
function guardDeclaredRoutes(fastify: FastifyInstance, realm: string): void {
  let root = fastify
  // A child context is an Object.create() of its parent: the root is at the end of the chain.
  for (let up = Object.getPrototypeOf(root) as unknown; isInstance(up); up = Object.getPrototypeOf(up) as unknown) {
    root = up
  }
  const marked = root as FastifyInstance & { [GUARDED]?: true }
  if (marked[GUARDED] === true) return
  marked[GUARDED] = true
  const reported = new Set<string>()
  root.addHook('onRequest', function refuseUncheckedRoutes(request, _reply, done) {
    const { schema, config, url } = request.routeOptions
    const security = (schema as { security?: Record<string, unknown>[] } | undefined)?.security
    if (security === undefined || (config as unknown as Record<symbol, unknown> | undefined)?.[CHECKED] === true
      || !security.some((entry) => BEARER_AUTH in entry)) {
      done()
      return
    }
    const route = `${request.method} ${url ?? request.url}`
    if (!reported.has(route)) {
      reported.add(route)
      request.log.error({ route }, 'a route declares bearerAuth security, but the token check is not installed on it: '
        + 'register the auth plugin (awaited) before the route, in the same or a parent context; refusing its requests')
    }
    done(notConfigured(realm))
  })
}

function isInstance(value: unknown): value is FastifyInstance {
  return typeof value === 'object' && value !== null && typeof (value as { addHook?: unknown }).addHook === 'function'
}

export default fp(bearerAuth, { name: 'mrmat-auth', fastify: '5.x' })
