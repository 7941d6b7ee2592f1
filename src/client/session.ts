import { printable } from '../lib/text.js'
import { displayUrl, CLIENT_NAME, type ClientSettings } from './config.js'
import { AuthError, ClientError, UsageError } from './errors.js'
import type { HttpOptions } from './http.js'
import {
  clientCredentials, discover, pollForTokens, refresh, requestDeviceCode, revoke, unverifiedClaims,
  type Discovery, type OidcClient, type PollOptions, type Tokens,
} from './oidc.js'
import type { Output } from './output.js'
import {
  cacheFile, isFresh, listLogins, readCache, removeCache, withCacheLock, writeCache, type CachedTokens,
} from './token-cache.js'

/** What login, logout and every authenticated command share: checked settings, where to write, how to talk HTTP. */
export interface Session {
  settings: ClientSettings & { server: URL, discoveryUrl: URL, clientId: string }
  output: Output
  env: NodeJS.ProcessEnv
  http: HttpOptions
}

const LOGIN = `'${CLIENT_NAME} login'`

function oidcClient(session: Session): OidcClient {
  return { id: session.settings.clientId, secret: session.settings.clientSecret }
}

function cachePath(session: Session): string {
  return cacheFile(session.env, session.settings)
}

/** Whom the tokens name: the ID token's name for a person, the access token's for a client. */
function userOf(tokens: Tokens, clientId: string): string {
  for (const claims of [unverifiedClaims(tokens.idToken), unverifiedClaims(tokens.accessToken)]) {
    const name = claims?.preferred_username ?? claims?.sub
    if (typeof name === 'string' && name !== '') return name
  }
  return clientId
}

function save(session: Session, grant: CachedTokens['grant'], tokens: Tokens, previous?: CachedTokens): CachedTokens {
  const { settings } = session
  const cached: CachedTokens = {
    version: 1,
    server: settings.server.href,
    discovery_url: settings.discoveryUrl.href,
    client_id: settings.clientId,
    grant,
    access_token: tokens.accessToken,
    expires_at: tokens.expiresIn === undefined ? null : Math.floor(Date.now() / 1000) + tokens.expiresIn,
    // RFC 6749 §6: a refresh answer without a refresh token leaves the old one in force.
    refresh_token: tokens.refreshToken ?? previous?.refresh_token ?? null,
    scope: tokens.scope ?? previous?.scope ?? null,
    user: previous?.user ?? userOf(tokens, settings.clientId),
  }
  writeCache(cachePath(session), cached)
  return cached
}

function loggedIn(session: Session, cached: CachedTokens): void {
  const until = cached.expires_at === null ? undefined : new Date(cached.expires_at * 1000).toISOString()
  session.output.result(
    `Logged in to ${displayUrl(session.settings.server)} as ${printable(cached.user ?? session.settings.clientId)}.`,
    { logged_in: true, user: cached.user, server: displayUrl(session.settings.server), expires_at: until ?? null },
  )
}

async function deviceDiscovery(session: Session): Promise<Discovery> {
  return discover(session.settings.discoveryUrl, session.http)
}

/** The device authorization grant (RFC 8628): a person signs in elsewhere while this polls. */
export async function loginWithDevice(session: Session, poll: Omit<PollOptions, 'onSlowDown'>): Promise<void> {
  const { settings, output } = session
  const discovery = await deviceDiscovery(session)
  const scope = ['openid', 'profile', 'offline_access', settings.readScope, settings.writeScope].join(' ')
  const device = await requestDeviceCode(discovery, oidcClient(session), scope, session.http)
  const minutes = Math.max(1, Math.round(device.expiresIn / 60))
  output.result(
    [
      `To sign in, open ${device.verificationUri} and enter the code ${device.userCode}`,
      ...(device.verificationUriComplete === undefined ? [] : [`or open ${device.verificationUriComplete}`]),
      `within ${minutes} minute${minutes === 1 ? '' : 's'}.`,
    ].join('\n'),
    {
      verification_uri: device.verificationUri,
      user_code: device.userCode,
      verification_uri_complete: device.verificationUriComplete ?? null,
      expires_in: device.expiresIn,
    },
  )
  const spinner = output.spinner('Waiting for the sign-in to complete…')
  let tokens: Tokens
  try {
    tokens = await pollForTokens(discovery, oidcClient(session), device, session.http, {
      ...poll,
      onSlowDown: (seconds) => {
        spinner.update(`The identity provider asked to poll less often: every ${seconds} s now`)
      },
    })
  } finally {
    spinner.stop()
  }
  if (tokens.refreshToken === undefined) {
    output.note(
      'The identity provider issued no refresh token: '
      + 'you will have to log in again when the access token expires.',
    )
  }
  loggedIn(session, save(session, 'device_code', tokens))
}

/** The client credentials grant, for automation: the client acts as itself, no person involved. */
export async function loginWithClientCredentials(session: Session): Promise<void> {
  const discovery = await deviceDiscovery(session)
  const scope = `${session.settings.readScope} ${session.settings.writeScope}`
  const tokens = await clientCredentials(discovery, oidcClient(session), scope, session.http)
  loggedIn(session, save(session, 'client_credentials', tokens))
}

/**
 * Removes the cached tokens and asks the provider to revoke the refresh token; a revocation that fails is only noted.
 */
export async function logout(session: Session): Promise<void> {
  const path = cachePath(session)
  let cached: CachedTokens | undefined
  try {
    cached = readCache(path)
  } catch (error) {
    // A damaged cache is removed all the same: that is what the user asked for.
    if (!(error instanceof AuthError)) throw error
  }
  const removed = removeCache(path)
  const server = displayUrl(session.settings.server)
  if (cached !== undefined && cached.refresh_token !== null) {
    try {
      const discovery = await deviceDiscovery(session)
      const revoked = await revoke(discovery, oidcClient(session), cached.refresh_token, 'refresh_token', session.http)
      if (!revoked) {
        session.output.note('The identity provider did not revoke the refresh token; it stays valid until it expires.')
      }
    } catch (error) {
      if (!(error instanceof ClientError)) throw error
      session.output.note(`The refresh token could not be revoked (${error.message}); it stays valid until it expires.`)
    }
  }
  session.output.result(
    removed ? `Logged out of ${server}.` : `Not logged in to ${server}.`,
    { logged_out: removed, server },
  )
}

/**
 * A current access token: the cached one, else one renewed with the refresh token (or, after a client-credentials
 * login, the client secret). Asks the user to log in only when that is the only way left.
 */
export async function accessToken(session: Session): Promise<string> {
  const { settings } = session
  const server = displayUrl(settings.server)
  const path = cachePath(session)
  const cached = readCache(path)
  if (cached === undefined) throw new AuthError(`not logged in to ${server}: run ${LOGIN} first`)
  if (isFresh(cached)) return cached.access_token
  // A renewal waits for one another command may be doing, then uses what that one saved.
  return withCacheLock(path, session.http.timeoutMs + LOCK_MARGIN_MS, async () => {
    const current = readCache(path)
    if (current === undefined) throw new AuthError(`not logged in to ${server}: run ${LOGIN} first`)
    if (isFresh(current)) {
      session.output.debug('the access token had expired and another command renewed it')
      return current.access_token
    }
    return renew(session, current)
  })
}

/** Beyond one HTTP request's time, how long a command waits for another's renewal. */
const LOCK_MARGIN_MS = 5_000

async function renew(session: Session, cached: CachedTokens): Promise<string> {
  const { settings, output } = session
  const server = displayUrl(settings.server)
  const canRenewAsClient = cached.grant === 'client_credentials' && settings.clientSecret !== undefined
  if (cached.refresh_token === null && !canRenewAsClient) {
    throw new AuthError(`the login to ${server} has expired: run ${LOGIN} to log in again`)
  }
  const discovery = await deviceDiscovery(session)
  const scope = `${settings.readScope} ${settings.writeScope}`
  let tokens: Tokens
  try {
    tokens = cached.refresh_token === null
      ? await clientCredentials(discovery, oidcClient(session), scope, session.http)
      : await refresh(discovery, oidcClient(session), cached.refresh_token, session.http)
  } catch (error) {
    if (error instanceof AuthError) {
      throw new AuthError(
        `the login to ${server} has expired and could not be renewed (${error.message}): run ${LOGIN} to log in again`,
      )
    }
    throw error
  }
  output.debug('the access token had expired and was renewed')
  return save(session, cached.grant, tokens, cached).access_token
}

/** One login as `status` shows it. */
export interface LoginStatus {
  server: string
  user: string | null
  client_id: string
  discovery_url: string
  scopes: string[]
  /** ISO 8601, or null when the provider did not say. */
  expires_at: string | null
  /** Whether the access token has expired (the next command renews it when it can). */
  expired: boolean
  renewable: boolean
}

export function loginStatus(cached: CachedTokens, now = Date.now()): LoginStatus {
  return {
    server: displayUrl(new URL(cached.server)),
    user: cached.user,
    client_id: cached.client_id,
    discovery_url: cached.discovery_url,
    scopes: (cached.scope ?? '').split(' ').filter((scope) => scope !== ''),
    expires_at: cached.expires_at === null ? null : new Date(cached.expires_at * 1000).toISOString(),
    expired: !isFresh(cached, now),
    renewable: cached.refresh_token !== null || cached.grant === 'client_credentials',
  }
}

/** "Logged in to URL as alice (client c) with scopes a b, until T", for people; names are escaped. */
export function describeLogin(login: LoginStatus): string {
  const who = `Logged in to ${login.server} as ${printable(login.user ?? login.client_id)} `
    + `(client ${printable(login.client_id)})`
  const scopes = login.scopes.length === 0 ? 'no scopes' : `scopes ${printable(login.scopes.join(' '))}`
  const until = login.expires_at === null
    ? 'with no expiry given'
    : login.expired
      ? `expired at ${login.expires_at} (${login.renewable ? 'the next command renews it' : 'log in again'})`
      : `until ${login.expires_at}`
  return `${who} with ${scopes}, ${until}`
}

/**
 * The settings completed from the logins the cache remembers: a login records its server, discovery URL and client id
 * (never the secret), so after `login --server S --discovery-url D --client-id C`, `--server S` alone finds D and C,
 * and with no server at all the one login there is is used. A setting that is given always wins, and only a login
 * that agrees with every given one is taken; two or more that fit are a question the user must answer.
 */
export function rememberedLogin(settings: ClientSettings, env: NodeJS.ProcessEnv): ClientSettings {
  if (settings.server !== undefined && settings.discoveryUrl !== undefined && settings.clientId !== undefined) {
    return settings
  }
  const fitting = fittingLogins(settings, env)
  if (fitting.length === 0) return settings
  const [login] = fitting
  if (fitting.length > 1 || login === undefined) {
    const servers = [...new Set(fitting.map((one) => displayUrl(new URL(one.server))))].sort()
    throw new UsageError(`${String(fitting.length)} remembered logins fit (${servers.join(', ')}): `
      + 'name the server (and the client id or discovery URL where one server has several)')
  }
  return {
    ...settings,
    server: settings.server ?? new URL(login.server),
    discoveryUrl: settings.discoveryUrl ?? new URL(login.discovery_url),
    clientId: settings.clientId ?? login.client_id,
  }
}

/**
 * The remembered logins that fit the given settings (all of them when none is given); why a cache file could not be
 * used is added to `unusable` when it is given.
 */
export function fittingLogins(settings: ClientSettings, env: NodeJS.ProcessEnv, unusable?: string[]): CachedTokens[] {
  const logins = listLogins(env, unusable)
  return logins.filter((login) => (settings.server === undefined || login.server === settings.server.href)
    && (settings.discoveryUrl === undefined || login.discovery_url === settings.discoveryUrl.href)
    && (settings.clientId === undefined || login.client_id === settings.clientId))
}
