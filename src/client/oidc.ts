import { setTimeout as delay } from 'node:timers/promises'
import { AuthError, NetworkError, oneLine } from './errors.js'
import { exchange, isObject, json, type Answer, type HttpOptions, type Party } from './http.js'

export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code'
/** RFC 8628 §3.2: the interval when the provider names none, and what each slow_down adds. */
export const DEFAULT_POLL_SECONDS = 5
export const SLOW_DOWN_SECONDS = 5

export interface OidcClient {
  id: string
  /** Absent for a public client such as the CLI's own. */
  secret: string | undefined
}

export interface Discovery {
  issuer: string
  tokenEndpoint: URL
  deviceAuthorizationEndpoint: URL | undefined
  revocationEndpoint: URL | undefined
  authMethods: string[]
}

export interface Tokens {
  accessToken: string
  /** Seconds, as the provider said; undefined when it did not. */
  expiresIn: number | undefined
  refreshToken: string | undefined
  idToken: string | undefined
  scope: string | undefined
}

export interface DeviceAuthorization {
  deviceCode: string
  userCode: string
  verificationUri: string
  verificationUriComplete: string | undefined
  expiresIn: number
  /** Seconds between polls the provider asks for; RFC 8628 lets it say nothing. */
  interval: number | undefined
}

function providerAt(url: URL): Party {
  return { name: 'identity provider', at: url.origin }
}

function endpoint(document: Record<string, unknown>, key: string, from: URL): URL | undefined {
  const value = document[key]
  if (typeof value !== 'string') return undefined
  try {
    return new URL(value)
  } catch {
    throw new NetworkError(`the discovery document at ${from.href} has a ${key} that is not a URL`)
  }
}

export async function discover(url: URL, http: HttpOptions): Promise<Discovery> {
  const answer = await exchange({ name: 'identity provider', at: url.href }, url, {
    headers: { accept: 'application/json' },
  }, http)
  if (answer.status !== 200) {
    throw new NetworkError(`the identity provider answered ${answer.status} for its discovery document at ${url.href}`)
  }
  const document = json(answer)
  if (!isObject(document)) throw new NetworkError(`the discovery document at ${url.href} is not a JSON object`)
  const tokenEndpoint = endpoint(document, 'token_endpoint', url)
  if (tokenEndpoint === undefined) {
    throw new NetworkError(`the discovery document at ${url.href} names no token_endpoint`)
  }
  const methods = document.token_endpoint_auth_methods_supported
  return {
    issuer: typeof document.issuer === 'string' ? document.issuer : url.origin,
    tokenEndpoint,
    deviceAuthorizationEndpoint: endpoint(document, 'device_authorization_endpoint', url),
    revocationEndpoint: endpoint(document, 'revocation_endpoint', url),
    authMethods: Array.isArray(methods) ? methods.filter((method) => typeof method === 'string') : [],
  }
}

/**
 * Client authentication on a request to the provider. A secret goes in Basic unless the provider supports only
 * client_secret_post: RFC 8414 makes Basic the default, and oidc-provider refuses a method the client was not
 * registered with.
 */
function authenticate(client: OidcClient, discovery: Discovery, form: URLSearchParams): Record<string, string> {
  const headers: Record<string, string> = { accept: 'application/json' }
  if (client.secret === undefined) {
    form.set('client_id', client.id)
  } else if (discovery.authMethods.length > 0 && !discovery.authMethods.includes('client_secret_basic')) {
    form.set('client_id', client.id)
    form.set('client_secret', client.secret)
  } else {
    // RFC 6749 §2.3.1: form-encoded before base64.
    const encode = (value: string) => encodeURIComponent(value).replace(/%20/g, '+')
    headers.authorization = `Basic ${Buffer.from(`${encode(client.id)}:${encode(client.secret)}`).toString('base64')}`
  }
  return headers
}

interface OAuthError {
  error: string
  description: string | undefined
}

/** RFC 6749 §5.2's error body, or undefined when the answer is not one. */
function oauthError(answer: Answer): OAuthError | undefined {
  const body = json(answer)
  if (answer.status < 400 || !isObject(body) || typeof body.error !== 'string') return undefined
  return {
    error: oneLine(body.error, 80),
    description: typeof body.error_description === 'string' ? oneLine(body.error_description) : undefined,
  }
}

export function providerSays(error: OAuthError): string {
  return `the identity provider says: ${error.error}${error.description === undefined ? '' : ` (${error.description})`}`
}

async function post(
  url: URL,
  client: OidcClient,
  discovery: Discovery,
  form: URLSearchParams,
  http: HttpOptions,
): Promise<Answer> {
  const headers = authenticate(client, discovery, form)
  return exchange(providerAt(url), url, { method: 'POST', headers, body: form }, http)
}

function unexpected(url: URL, answer: Answer, what: string): NetworkError {
  return new NetworkError(`the identity provider at ${url.origin} answered ${answer.status} without ${what}`)
}

function tokensFrom(url: URL, answer: Answer): Tokens {
  const body = json(answer)
  if (!isObject(body) || typeof body.access_token !== 'string' || body.access_token === '') {
    throw unexpected(url, answer, 'an access token')
  }
  if (typeof body.token_type !== 'string' || body.token_type.toLowerCase() !== 'bearer') {
    throw new NetworkError(
      `the identity provider at ${url.origin} issued a token of type ${JSON.stringify(body.token_type)}, not Bearer`,
    )
  }
  const text = (value: unknown) => (typeof value === 'string' && value !== '' ? value : undefined)
  return {
    accessToken: body.access_token,
    expiresIn: typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : undefined,
    refreshToken: text(body.refresh_token),
    idToken: text(body.id_token),
    scope: text(body.scope),
  }
}

/** A token request that either yields tokens or fails with the provider's OAuth error as an authentication failure. */
async function tokenRequest(
  discovery: Discovery,
  client: OidcClient,
  form: URLSearchParams,
  http: HttpOptions,
): Promise<Tokens> {
  const answer = await post(discovery.tokenEndpoint, client, discovery, form, http)
  if (answer.status === 200) return tokensFrom(discovery.tokenEndpoint, answer)
  const error = oauthError(answer)
  if (error !== undefined) throw new AuthError(providerSays(error))
  throw unexpected(discovery.tokenEndpoint, answer, 'tokens or an OAuth error')
}

export async function requestDeviceCode(
  discovery: Discovery,
  client: OidcClient,
  scope: string,
  http: HttpOptions,
): Promise<DeviceAuthorization> {
  const url = discovery.deviceAuthorizationEndpoint
  if (url === undefined) {
    throw new AuthError(
      `the identity provider ${discovery.issuer} offers no device authorization (no device_authorization_endpoint)`,
    )
  }
  const answer = await post(url, client, discovery, new URLSearchParams({ scope }), http)
  const error = oauthError(answer)
  if (error !== undefined) throw new AuthError(providerSays(error))
  const body = json(answer)
  if (answer.status !== 200 || !isObject(body)) throw unexpected(url, answer, 'a device code')
  // Some providers (Google's) still say verification_url, as drafts of RFC 8628 did.
  const verificationUri = body.verification_uri ?? body.verification_url
  if (typeof body.device_code !== 'string' || typeof body.user_code !== 'string'
    || typeof verificationUri !== 'string') {
    throw unexpected(url, answer, 'a device_code, user_code and verification_uri')
  }
  return {
    deviceCode: body.device_code,
    userCode: body.user_code,
    verificationUri,
    verificationUriComplete: typeof body.verification_uri_complete === 'string'
      ? body.verification_uri_complete
      : undefined,
    expiresIn: typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 600,
    interval: typeof body.interval === 'number' && body.interval > 0 ? body.interval : undefined,
  }
}

export interface PollOptions {
  /** Seconds between polls instead of the provider's interval, and the most a slow_down adds. */
  pollInterval?: number | undefined
  /** Told the new interval in seconds after each slow_down. */
  onSlowDown?: (seconds: number) => void
  sleep?: (ms: number) => Promise<void>
  now?: () => number
}

/**
 * Polls the token endpoint until the person has signed in (RFC 8628 §3.4–3.5): waits the interval before each
 * request, adds to it on slow_down, and gives up on access_denied, expired_token or once the device code has expired.
 */
export async function pollForTokens(
  discovery: Discovery,
  client: OidcClient,
  device: DeviceAuthorization,
  http: HttpOptions,
  options: PollOptions = {},
): Promise<Tokens> {
  const sleep = options.sleep ?? (async (ms: number) => { await delay(ms) })
  const now = options.now ?? Date.now
  const deadline = now() + device.expiresIn * 1000
  let interval = options.pollInterval ?? device.interval ?? DEFAULT_POLL_SECONDS
  // A shortened interval (tests, a lenient provider) shortens the slow_down step alike, so a test's schedule stays
  // short.
  const step = Math.min(SLOW_DOWN_SECONDS, options.pollInterval ?? SLOW_DOWN_SECONDS)
  const expired = () => new AuthError('the sign-in code expired before sign-in was completed: run login again')
  const form = () => new URLSearchParams({ grant_type: DEVICE_CODE_GRANT, device_code: device.deviceCode })
  for (;;) {
    await sleep(interval * 1000)
    if (now() >= deadline) throw expired()
    const answer = await post(discovery.tokenEndpoint, client, discovery, form(), http)
    if (answer.status === 200) return tokensFrom(discovery.tokenEndpoint, answer)
    const error = oauthError(answer)
    if (error === undefined) throw unexpected(discovery.tokenEndpoint, answer, 'tokens or an OAuth error')
    switch (error.error) {
      case 'authorization_pending':
        break
      case 'slow_down':
        interval += step
        options.onSlowDown?.(interval)
        break
      case 'access_denied':
        throw new AuthError('the sign-in was denied at the identity provider (access_denied)')
      case 'expired_token':
        throw expired()
      default:
        throw new AuthError(providerSays(error))
    }
  }
}

export async function clientCredentials(
  discovery: Discovery,
  client: OidcClient,
  scope: string,
  http: HttpOptions,
): Promise<Tokens> {
  return tokenRequest(discovery, client, new URLSearchParams({ grant_type: 'client_credentials', scope }), http)
}

export async function refresh(
  discovery: Discovery,
  client: OidcClient,
  refreshToken: string,
  http: HttpOptions,
): Promise<Tokens> {
  const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken })
  return tokenRequest(discovery, client, form, http)
}

/** RFC 7009 revocation; false when the provider offers none or refuses. */
export async function revoke(
  discovery: Discovery,
  client: OidcClient,
  token: string,
  hint: 'refresh_token' | 'access_token',
  http: HttpOptions,
): Promise<boolean> {
  const url = discovery.revocationEndpoint
  if (url === undefined) return false
  const answer = await post(url, client, discovery, new URLSearchParams({ token, token_type_hint: hint }), http)
  return answer.status === 200
}

/** A JWT's claims, unverified: only to say whom a token names. Undefined for an opaque token. */
export function unverifiedClaims(token: string | undefined): Record<string, unknown> | undefined {
  const payload = token?.split('.')[1]
  if (payload === undefined) return undefined
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as unknown
    return isObject(claims) ? claims : undefined
  } catch {
    return undefined
  }
}
