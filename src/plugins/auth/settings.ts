import { readFileSync } from 'node:fs'
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { codedError, EXIT_USAGE } from '../../lib/errors.js'
import type { TokenTypePolicy } from './token-type.js'

/** How the API server finds and trusts its identity provider, validated once at start. */
export interface AuthSettings {
  /** Must equal a token's `iss` exactly. */
  issuer: string
  /** Must be among a token's `aud`. */
  audience: string
  /** Overrides the `jwks_uri` of discovery. */
  jwksUri: string | undefined
  /** Overrides the `introspection_endpoint` of discovery (the seed's `token_introspection_uri`). */
  introspectionEndpoint: string | undefined
  /** The server's own client, for introspection of opaque tokens. */
  clientId: string | undefined
  clientSecret: string | undefined
  /** Seconds of clock skew allowed on `exp` and `nbf`. */
  clockTolerance: number
  /** Which JWTs count as access tokens (see token-type.ts). */
  tokenType: TokenTypePolicy
}

export const DEFAULT_CLOCK_TOLERANCE = 30

/** The seed's (Flask-OIDC) client-secrets file; only `web` is read, other keys are left alone. */
const ClientSecretsSchema = Type.Object({
  web: Type.Object({
    client_id: Type.String({ minLength: 1 }),
    client_secret: Type.Optional(Type.String()),
    issuer: Type.String({ minLength: 1 }),
    token_introspection_uri: Type.Optional(Type.String({ minLength: 1 })),
    userinfo_uri: Type.Optional(Type.String()),
  }),
})
export type ClientSecrets = Static<typeof ClientSecretsSchema>

/** The identity provider's settings do not make sense: the CLI exits 2 with the message. */
export const AuthSettingsError = codedError('MRMAT_AUTH_SETTINGS_INVALID', { exitCode: EXIT_USAGE })

export function readClientSecrets(path: string): ClientSecrets {
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'))
  } catch (error) {
    throw new AuthSettingsError(`cannot read the client secrets ${path}: ${(error as Error).message}`)
  }
  const problem = Value.Errors(ClientSecretsSchema, parsed).First()
  if (problem !== undefined) {
    throw new AuthSettingsError(
      `the client secrets ${path} are not in the expected {"web": {"client_id", "issuer", ...}} form: `
      + `${problem.path || '/'} ${problem.message.toLowerCase()}`,
    )
  }
  return parsed as ClientSecrets
}

function httpUrl(value: string, what: string): string {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new AuthSettingsError(`${what} is not a URL: ${value}`)
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new AuthSettingsError(`${what} must be an http(s) URL: ${value}`)
  }
  return value
}

/**
 * Merges the client-secrets file with --issuer, --audience and --jwks-uri (which win). Returns
 * undefined when no issuer is configured at all: the server then runs without authentication.
 */
export function resolveAuthSettings(options: {
  secrets?: ClientSecrets
  issuer?: string
  audience?: string
  jwksUri?: string
  clockTolerance?: number
  tokenType?: TokenTypePolicy
}): AuthSettings | undefined {
  const web = options.secrets?.web
  const issuer = options.issuer ?? web?.issuer
  if (issuer === undefined) {
    if (options.audience !== undefined || options.jwksUri !== undefined) {
      throw new AuthSettingsError('--audience and --jwks-uri need an issuer: set --issuer or --oidc-secrets')
    }
    return undefined
  }
  // The audience is required: defaulting to the client id is what Keycloak's audience mapper yields.
  const audience = options.audience ?? web?.client_id
  if (audience === undefined) throw new AuthSettingsError('an audience is required: set --audience or --oidc-secrets')
  return {
    issuer: httpUrl(issuer, 'the issuer'),
    audience,
    jwksUri: options.jwksUri === undefined ? undefined : httpUrl(options.jwksUri, '--jwks-uri'),
    introspectionEndpoint: web?.token_introspection_uri === undefined
      ? undefined
      : httpUrl(web.token_introspection_uri, 'token_introspection_uri'),
    clientId: web?.client_id,
    clientSecret: web?.client_secret === '' ? undefined : web?.client_secret,
    clockTolerance: options.clockTolerance ?? DEFAULT_CLOCK_TOLERANCE,
    tokenType: options.tokenType ?? 'compatible',
  }
}
