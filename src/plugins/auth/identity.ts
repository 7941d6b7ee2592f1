import type { FastifyRequest } from 'fastify'
import { cleanText } from '../../lib/text.js'

/** Who called, as every protected route sees it, whatever the token's shape. */
export interface Identity {
  /** The token's `sub`: stable, the key to the caller's data. */
  subject: string
  /** For people: `preferred_username`, else `username`, else `client_id`, else `sub`. */
  name: string
  scopes: string[]
  clientId: string | undefined
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the bearer-token hook on routes that declare bearerAuth security; null elsewhere. */
    identity: Identity | null
  }
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined
}

/** Scopes from `scope` (space-separated, RFC 8693/9068) or `scp` (an array, Entra ID and Okta). */
export function scopesOf(claims: Record<string, unknown>): string[] {
  if (typeof claims.scope === 'string') return claims.scope.split(' ').filter((s) => s !== '')
  if (Array.isArray(claims.scp)) return claims.scp.filter((s): s is string => typeof s === 'string')
  if (typeof claims.scp === 'string') return claims.scp.split(' ').filter((s) => s !== '')
  return []
}

/** The longest display name kept: names come from tokens, and are shown to other users. */
export const MAX_DISPLAY_NAME = 255

/** The identity in verified claims (a JWT payload or an introspection answer); undefined without `sub`. */
export function identityFromClaims(claims: Record<string, unknown>): Identity | undefined {
  const subject = text(claims.sub)
  if (subject === undefined) return undefined
  // Entra ID puts the client in azp (v2) or appid (v1); RFC 9068 in client_id.
  const clientId = text(claims.client_id) ?? text(claims.azp) ?? text(claims.appid)
  return {
    subject,
    // Stored as the owner's name and shown to others: no terminal escapes or bidi tricks, bounded.
    name: cleanText(text(claims.preferred_username) ?? text(claims.username) ?? clientId ?? subject, MAX_DISPLAY_NAME)
      || '(unnamed)',
    scopes: scopesOf(claims),
    clientId,
  }
}

/** The caller of a protected route. Calling it elsewhere is a programming error (a 500). */
export function identityOf(request: FastifyRequest): Identity {
  if (request.identity === null) {
    throw new Error(`no identity on ${request.method} ${request.url}: the route declares no bearerAuth security`)
  }
  return request.identity
}
