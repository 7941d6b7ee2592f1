import { createHash, generateKeyPairSync, randomBytes, type JsonWebKey } from 'node:crypto'
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { codedError, EXIT_RUNTIME } from '../lib/errors.js'
import { importExternal } from '../lib/import-external.js'
import { mapAdapter, type Stored } from './oidc-store.js'

/*
 * The development identity provider of `mrmat-ts-api-fastify dev`: oidc-provider on its own loopback port, in the
 * server's process. Anyone who can reach it signs in as any name they type, so it listens on 127.0.0.1 only and the
 * dev command refuses any other --host. Its signing key, cookie keys, the scripts client's secret and what it has
 * issued (grants, refresh tokens, sessions) live in <instance path>/dev-identity-provider/ (0700, files 0600), so that
 * tokens and logins survive a restart on the same port.
 */

/** oidc-provider could not be loaded or started. */
export const DevIdentityProviderError = codedError('MRMAT_DEV_IDENTITY_PROVIDER', { exitCode: EXIT_RUNTIME })

export const DEV_PROVIDER_FOLDER = 'dev-identity-provider'
/** Written at start for the token command: where the provider is and the scripts client's credentials. */
export const DEV_CONNECTION_FILE = 'connection.json'
/** The client CLI's public client (device flow, refresh tokens). */
export const DEV_DEVICE_CLIENT = 'mrmat-cli'
/** A confidential client for scripts and curl (client credentials). */
export const DEV_SCRIPT_CLIENT = 'mrmat-script'
/** The API as a resource indicator: it must be an absolute URI, and the audience is a plain name. */
const RESOURCE = 'urn:mrmat-ts-api-fastify:api'
const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code'
const LOOPBACK = '127.0.0.1'
const ACCESS_TOKEN_TTL = 3600
/** The longest user name the sign-in page takes. */
const MAX_NAME = 64

export interface DevProviderOptions {
  instancePath: string
  /** 0 picks a free one. */
  port: number
  audience: string
  readScope: string
  writeScope: string
}

/** What the token command reads: the provider's address and the scripts client. */
export interface DevConnection {
  issuer: string
  client_id: string
  client_secret: string
  scope: string
}

export interface DevIdentityProvider {
  /** http://127.0.0.1:<port>, no trailing slash. */
  readonly issuer: string
  readonly deviceClientId: string
  readonly scriptClient: { id: string, secret: string }
  close(): Promise<void>
}

interface Secrets {
  /** The private signing key (RSA, RS256), with its kid. */
  key: JsonWebKey & { kid: string }
  cookieKeys: string[]
  scriptSecret: string
}

/** Written whole and renamed into place, readable by the owner only. */
function writePrivate(path: string, content: string): void {
  const temporary = `${path}.${String(process.pid)}.tmp`
  writeFileSync(temporary, content, { mode: 0o600 })
  renameSync(temporary, path)
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new DevIdentityProviderError(`cannot read ${path}: ${(error as Error).message} (delete it to start afresh)`)
  }
}

/** RFC 7638: the SHA-256 of the required members in lexicographic order. */
function thumbprint({ e, kty, n }: JsonWebKey): string {
  return createHash('sha256').update(JSON.stringify({ e, kty, n })).digest('base64url')
}

/** The keys of the folder, made the first time and kept: a restart signs with the same key. */
function loadSecrets(folder: string): Secrets {
  const path = join(folder, 'secrets.json')
  const kept = readJson(path) as Secrets | undefined
  if (kept !== undefined) return kept
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const jwk = privateKey.export({ format: 'jwk' })
  const secrets: Secrets = {
    key: { ...jwk, kid: thumbprint(jwk), alg: 'RS256', use: 'sig' },
    cookieKeys: [randomBytes(32).toString('base64url')],
    scriptSecret: randomBytes(24).toString('base64url'),
  }
  writePrivate(path, `${JSON.stringify(secrets, null, 2)}\n`)
  return secrets
}

/** oidc-provider's storage: a Map written to a file on every change (a development load is a few writes a login). */
function fileAdapter(path: string): (model: string) => unknown {
  const store = new Map<string, Stored>(Object.entries((readJson(path) ?? {}) as Record<string, Stored>))
  return mapAdapter(store, () => {
    for (const [key, entry] of store) if ((entry.expiresAt ?? Infinity) <= Date.now()) store.delete(key)
    writePrivate(path, JSON.stringify(Object.fromEntries(store)))
  })
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${String(c.charCodeAt(0))};`)
}

const STYLE = '<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}'
  + 'input,button{font-size:1.1rem;padding:.3rem .5rem}.note{color:#555}.error{color:#b00}</style>'

function page(title: string, body: string): string {
  return `<!DOCTYPE html><html lang="en"><meta charset="utf-8"><title>${escapeHtml(title)}</title>${STYLE}`
    + `<h1>${escapeHtml(title)}</h1>${body}<p class="note">mrmat-ts-api-fastify development identity provider: `
    + 'for local use only.</p></html>'
}

function signInForm(action: string, problem?: string): string {
  const error = problem === undefined ? '' : `<p class="error">${escapeHtml(problem)}</p>`
  return page('Sign in', `${error}<p>Type any user name: no password, no account needed. The API sees it as the `
    + `token's <code>sub</code> and <code>preferred_username</code>.</p><form method="post" action="${action}">`
    + `<label>User name <input name="login" autofocus required maxlength="${String(MAX_NAME)}"></label> `
    + '<button type="submit">Sign in</button></form>')
}

/** The parts of oidc-provider used here: it ships no type declarations. */
interface Interaction {
  prompt: { name: string, details: Record<string, unknown> }
  params: Record<string, unknown>
  session?: { accountId?: string }
  grantId?: string
}
interface Grant {
  addOIDCScope(scope: string): void
  addOIDCClaims(claims: string[]): void
  addResourceScope(indicator: string, scope: string): void
  save(): Promise<string>
}
interface OidcProvider {
  callback(): RequestListener
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<Interaction>
  interactionFinished(req: IncomingMessage, res: ServerResponse, result: Record<string, unknown>,
    options?: { mergeWithLastSubmission?: boolean }): Promise<void>
  Grant: {
    new (fields: { accountId?: string, clientId: unknown }): Grant
    find(id: string): Promise<Grant | undefined>
  }
  on(event: 'server_error', listener: (ctx: unknown, error: Error) => void): unknown
}
interface OidcModule {
  Provider: new (issuer: string, configuration: Record<string, unknown>) => OidcProvider
  errors: { InvalidTarget: new (description?: string) => Error }
}

// A module name as a plain string keeps TypeScript from demanding declarations the package does not have, and esbuild
// from bundling it: it loads from node_modules, and only for the dev command.
const OIDC_PROVIDER: string = 'oidc-provider'

async function loadOidcProvider(): Promise<OidcModule> {
  // oidc-provider warns on import that it wants Node 22: a development tool on Node 20 need not shout about it.
  const warn = console.warn
  console.warn = (...args: unknown[]) => {
    if (!(typeof args[0] === 'string' && args[0].includes('Unsupported runtime'))) warn(...args)
  }
  try {
    return await importExternal<OidcModule>(OIDC_PROVIDER)
  } catch (error) {
    throw new DevIdentityProviderError(
      `the development identity provider needs the package oidc-provider (an optional dependency, left out of the `
      + `container image): ${(error as Error).message}`,
    )
  } finally {
    console.warn = warn
  }
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  let body = ''
  for await (const chunk of req) {
    body += String(chunk)
    if (body.length > 4096) break
  }
  return new URLSearchParams(body)
}

/** The sign-in and consent steps of a device login: a form for any name, then consent to what the client asked. */
async function interact(provider: OidcProvider, req: IncomingMessage, res: ServerResponse,
  path: string): Promise<void> {
  const details = await provider.interactionDetails(req, res)
  const { prompt, params, session, grantId } = details
  if (prompt.name === 'login') {
    if (req.method !== 'POST') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
      res.end(signInForm(path))
      return
    }
    const name = (await readForm(req)).get('login')?.trim() ?? ''
    // eslint-disable-next-line no-control-regex
    if (name === '' || name.length > MAX_NAME || /[\u0000-\u001f\u007f]/.test(name)) {
      res.writeHead(400, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
      res.end(signInForm(path, `A user name is 1 to ${String(MAX_NAME)} characters, no control characters.`))
      return
    }
    await provider.interactionFinished(req, res, { login: { accountId: name } }, { mergeWithLastSubmission: false })
    return
  }
  // Consent: everything the client asked for is granted, as a development provider's only user would.
  const grant = grantId === undefined
    ? new provider.Grant({ accountId: session?.accountId, clientId: params.client_id })
    : await provider.Grant.find(grantId)
  if (grant === undefined) throw new Error('the grant of this interaction is gone')
  const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details as {
    missingOIDCScope?: string[]
    missingOIDCClaims?: string[]
    missingResourceScopes?: Record<string, string[]>
  }
  if (missingOIDCScope !== undefined) grant.addOIDCScope(missingOIDCScope.join(' '))
  if (missingOIDCClaims !== undefined) grant.addOIDCClaims(missingOIDCClaims)
  for (const [indicator, scopes] of Object.entries(missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '))
  }
  await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } })
}

function configuration(options: DevProviderOptions, secrets: Secrets, folder: string, oidc: OidcModule) {
  const scope = `${options.readScope} ${options.writeScope}`
  return {
    clients: [
      {
        client_id: DEV_DEVICE_CLIENT,
        token_endpoint_auth_method: 'none',
        grant_types: [DEVICE_CODE_GRANT, 'refresh_token'],
        response_types: [],
        redirect_uris: [],
      },
      {
        client_id: DEV_SCRIPT_CLIENT,
        client_secret: secrets.scriptSecret,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
      },
    ],
    jwks: { keys: [secrets.key] },
    cookies: { keys: secrets.cookieKeys },
    adapter: fileAdapter(join(folder, 'store.json')),
    claims: { openid: ['sub'], profile: ['name', 'preferred_username'] },
    findAccount: async (_ctx: unknown, sub: string) => ({
      accountId: sub,
      claims: async () => ({ sub, preferred_username: sub, name: sub }),
    }),
    extraTokenClaims: async (_ctx: unknown, token: { accountId?: string }) =>
      token.accountId === undefined ? undefined : { preferred_username: token.accountId },
    interactions: { url: async (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      deviceFlow: {
        enabled: true,
        userCodeInputSource: async (ctx: { body: string }, form: string, _out: unknown, error?: Error) => {
          const problem = error === undefined ? '' : '<p class="error">That code is not valid, or has expired.</p>'
          ctx.body = page('Sign in a device', `${problem}<p>Enter the code the client printed.</p>${form}`)
        },
        userCodeConfirmSource: async (ctx: { body: string }, form: string, _client: unknown, _device: unknown,
          userCode: string) => {
          ctx.body = page('Confirm the device', `<p>Sign in the client that shows the code <b>${escapeHtml(userCode)}`
            + `</b>?</p>${form}`)
        },
        successSource: async (ctx: { body: string }) => {
          ctx.body = page('Signed in', '<p id="device-success">The client is signed in: you can close this page.</p>')
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => RESOURCE,
        // Tokens of the device flow are then JWTs for the API rather than opaque tokens for userinfo.
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx: unknown, indicator: string) => {
          if (indicator !== RESOURCE) throw new oidc.errors.InvalidTarget()
          return {
            audience: options.audience,
            scope,
            accessTokenFormat: 'jwt',
            accessTokenTTL: ACCESS_TOKEN_TTL,
            jwt: { sign: { alg: 'RS256' } },
          }
        },
      },
    },
    // Set, so that oidc-provider prints no notice for each default it would use.
    ttl: {
      AccessToken: ACCESS_TOKEN_TTL,
      ClientCredentials: ACCESS_TOKEN_TTL,
      AuthorizationCode: 60,
      DeviceCode: 600,
      IdToken: 3600,
      RefreshToken: 14 * 86_400,
      Interaction: 600,
      Session: 14 * 86_400,
      Grant: 14 * 86_400,
    },
    renderError: async (ctx: { type: string, body: string }, out: Record<string, string>) => {
      ctx.type = 'html'
      ctx.body = page('Error', `<pre class="error">${escapeHtml(JSON.stringify(out, null, 2))}</pre>`)
    },
  }
}

async function listen(server: Server, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, LOOPBACK, () => {
      server.off('error', reject)
      resolve()
    })
  })
  return (server.address() as AddressInfo).port
}

/** Starts the provider on 127.0.0.1:<port> and writes the connection file the token command reads. */
export async function startDevIdentityProvider(options: DevProviderOptions): Promise<DevIdentityProvider> {
  const oidc = await loadOidcProvider()
  const folder = join(options.instancePath, DEV_PROVIDER_FOLDER)
  mkdirSync(folder, { recursive: true, mode: 0o700 })
  chmodSync(folder, 0o700)
  const secrets = loadSecrets(folder)
  // The issuer names the port, so the server listens before the provider is made, and answers once it is.
  const server = createServer()
  let port: number
  try {
    port = await listen(server, options.port)
  } catch (error) {
    throw new DevIdentityProviderError(`the development identity provider cannot listen on ${LOOPBACK}:`
      + `${String(options.port)} (--dev-issuer-port): ${(error as Error).message}`)
  }
  const issuer = `http://${LOOPBACK}:${String(port)}`
  const provider = new oidc.Provider(issuer, configuration(options, secrets, folder, oidc))
  provider.on('server_error', (_ctx, error) => {
    process.stderr.write(`dev identity provider: ${error.stack ?? ''}\n`)
  })
  const callback = provider.callback()
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', issuer).pathname
    if (!/^\/interaction\/[\w-]+$/.test(path)) {
      callback(req, res)
      return
    }
    interact(provider, req, res, path).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/html; charset=utf-8' })
      res.end(page('Sign-in failed', `<p class="error">${escapeHtml((error as Error).message)}</p>`
        + '<p>Start again from the client.</p>'))
    })
  })
  const connection: DevConnection = {
    issuer,
    client_id: DEV_SCRIPT_CLIENT,
    client_secret: secrets.scriptSecret,
    scope: `${options.readScope} ${options.writeScope}`,
  }
  writePrivate(join(folder, DEV_CONNECTION_FILE), `${JSON.stringify(connection, null, 2)}\n`)
  return {
    issuer,
    deviceClientId: DEV_DEVICE_CLIENT,
    scriptClient: { id: DEV_SCRIPT_CLIENT, secret: secrets.scriptSecret },
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => { resolve() })
        server.closeAllConnections()
      })
    },
  }
}
