/**
 * Which tokens count as access tokens for this API. `strict` takes only RFC 9068 access tokens (`typ: at+jwt`);
 * `compatible` also takes the plain JWTs that Keycloak and Entra ID issue as access tokens, when they carry the marks
 * of one and none of an ID token.
 */
export type TokenTypePolicy = 'strict' | 'compatible'

export const TOKEN_TYPE_POLICIES = ['strict', 'compatible'] as const

/** Claims only an OpenID Connect ID token carries: a token with any of them is not for an API. */
const ID_TOKEN_CLAIMS = ['nonce', 'at_hash', 'c_hash']

/** Claims that say a token grants access: scopes (RFC 8693 scope, Entra ID and Okta scp) or app roles (Entra ID). */
const ACCESS_CLAIMS = ['scope', 'scp', 'roles']

function mediaType(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined
  const type = value.toLowerCase()
  return type.startsWith('application/') ? type.slice('application/'.length) : type
}

/** Why a verified JWT is not an access token for this API, or undefined when it is one. */
export function notAnAccessJwt(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  policy: TokenTypePolicy,
): string | undefined {
  const typ = mediaType(header.typ)
  if (typ === 'at+jwt') return undefined
  if (policy === 'strict') return `the token's type is ${JSON.stringify(header.typ ?? null)}, not at+jwt`
  if (typ !== undefined && typ !== 'jwt') return `a token of type ${String(header.typ)} is not an access token`
  // Keycloak names the kind in the payload: Bearer for access tokens, ID and Refresh for the others.
  if (payload.typ !== undefined && payload.typ !== 'Bearer') {
    return `a ${JSON.stringify(payload.typ)} token is not an access token`
  }
  if (ID_TOKEN_CLAIMS.some((claim) => claim in payload)) return 'the token is an ID token, not an access token'
  if (payload.typ !== 'Bearer' && !ACCESS_CLAIMS.some((claim) => claim in payload)) {
    return 'the token carries no scope, scp or roles, so nothing says it is an access token'
  }
  return undefined
}

/**
 * Why an introspection answer does not prove an access token for this API (RFC 7662), or undefined when it does: it
 * must name this API in `aud` (a refresh or ID token is answered without one), and a token type, when given, must be
 * an access token's.
 */
export function notAnAccessIntrospection(claims: Record<string, unknown>, audience: string): string | undefined {
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud]
  if (claims.aud === undefined) return 'the identity provider does not say the token is for this API (no aud)'
  if (!audiences.includes(audience)) return 'the token is for another audience'
  const tokenType = typeof claims.token_type === 'string' ? claims.token_type.toLowerCase() : undefined
  if (claims.token_type !== undefined && tokenType !== 'bearer' && tokenType !== 'access_token') {
    return `a token of type ${JSON.stringify(claims.token_type)} is not an access token`
  }
  if (claims.typ !== undefined && claims.typ !== 'Bearer') {
    return `a ${JSON.stringify(claims.typ)} token is not an access token`
  }
  return undefined
}
