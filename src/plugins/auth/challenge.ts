import { HttpProblem, ProblemTypes } from '../../lib/problem.js'

/** Signature algorithms accepted: asymmetric only, so never `none` and never HS* keyed with a public key. */
export const ALGORITHMS = ['RS256', 'PS256', 'ES256', 'EdDSA'] as const

interface Challenge {
  status: 401 | 403 | 503
  type: string
  title: string
  detail: string
  error?: 'invalid_token' | 'insufficient_scope'
  scope?: string
  /** The refusal's reason in metrics. */
  reason: string
}

/** An RFC 6750 refusal: a problem body plus the WWW-Authenticate challenge. Never echoes the token. */
export function refuse(realm: string, challenge: Challenge): HttpProblem {
  const params = [`realm="${realm}"`]
  if (challenge.error !== undefined) {
    params.push(`error="${challenge.error}"`, `error_description="${challenge.detail.replaceAll('"', '\'')}"`)
  }
  if (challenge.scope !== undefined) params.push(`scope="${challenge.scope}"`)
  const headers: Record<string, string> = challenge.status === 503
    ? { 'retry-after': '5' }
    : { 'www-authenticate': `Bearer ${params.join(', ')}` }
  return new HttpProblem(challenge.status, challenge.detail, {
    type: challenge.type, title: challenge.title, headers, reason: challenge.reason,
  })
}

/**
 * Why a token was refused, as metrics count it: `malformed`, `expired`, `not_yet_valid`, `algorithm`, `unknown_key`,
 * `invalid` (signature, issuer, audience or claims), `not_access_token`, `no_subject`, `inactive`,
 * `not_introspectable`.
 */
export function invalidToken(realm: string, detail: string, reason = 'invalid'): HttpProblem {
  return refuse(realm, {
    reason,
    status: 401,
    type: ProblemTypes.invalidToken,
    title: 'Invalid token',
    detail,
    error: 'invalid_token',
  })
}

export function unavailable(detail: string, reason = 'provider_unavailable'): HttpProblem {
  return refuse('', {
    reason,
    status: 503,
    type: ProblemTypes.providerUnavailable,
    title: 'Identity provider unavailable',
    detail,
  })
}

export function tokenRequired(realm: string, detail: string): HttpProblem {
  return refuse(realm, {
    status: 401, type: ProblemTypes.tokenRequired, title: 'Token required', detail, reason: 'missing',
  })
}

export function notConfigured(realm: string): HttpProblem {
  return refuse(realm, {
    reason: 'not_configured',
    status: 401,
    type: ProblemTypes.authNotConfigured,
    title: 'Authentication not configured',
    detail: 'This route needs a bearer token, but authentication is not configured on this server',
  })
}

export function insufficientScope(realm: string, missing: string[], scope: string): HttpProblem {
  return refuse(realm, {
    reason: 'insufficient_scope',
    status: 403,
    type: ProblemTypes.insufficientScope,
    title: 'Insufficient scope',
    detail: `The token lacks the scope ${missing.join(' ')}`,
    error: 'insufficient_scope',
    scope,
  })
}
