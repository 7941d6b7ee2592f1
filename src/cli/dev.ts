import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { ConfigError, codedError, EXIT_RUNTIME } from '../lib/errors.js'
import { PACKAGE_NAME } from '../lib/package-info.js'
import { SERVER_OPTIONS } from '../options.js'
import { resolveAuthSettings } from '../plugins/auth/settings.js'
import type { ServerConfig } from './config.js'
import { DEV_CONNECTION_FILE, DEV_PROVIDER_FOLDER, type DevConnection } from './dev-identity-provider.js'

/*
 * `dev`: the server and a development identity provider in one process, for trying every route on one machine. It
 * must never serve anyone else: it refuses any address but loopback, runs one process, is not the image's command
 * (whose image does not even hold oidc-provider), and says loudly what it is.
 */

export const DEV_AUDIENCE = 'mrmat-ts-api-fastify'
const DEFAULT_INSTANCE_PATH = SERVER_OPTIONS.instancePath.default
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]'])

/** The token command found no development identity provider, or it did not answer. */
export const TokenError = codedError('MRMAT_DEV_TOKEN', { exitCode: EXIT_RUNTIME })

function isLoopback(host: string): boolean {
  return LOOPBACK_HOSTS.has(host.toLowerCase()) || /^127(\.\d{1,3}){3}$/.test(host)
}

/**
 * The dev command's configuration: the server's, checked for what dev refuses, with authentication pointed at the
 * development identity provider once it runs (see withDevIssuer).
 */
export function checkDevConfig(config: ServerConfig): ServerConfig {
  if (!isLoopback(config.host)) {
    throw new ConfigError(`dev refuses --host ${config.host}: its identity provider signs in anyone as any name, so `
      + 'it serves loopback only (localhost, 127.0.0.1 or ::1); use serve with a real identity provider elsewhere')
  }
  if (config.workers !== 1) {
    throw new ConfigError(`dev refuses --workers ${String(config.workers)}: it serves from one process`)
  }
  if (config.auth !== undefined) {
    throw new ConfigError('dev runs its own identity provider: leave out --issuer, --oidc-secrets and their variables')
  }
  return config
}

/** The configuration with the development provider as the issuer of the tokens the API accepts. */
export function withDevIssuer(config: ServerConfig, issuer: string): ServerConfig {
  return {
    ...config,
    auth: resolveAuthSettings({
      issuer,
      audience: config.audience ?? DEV_AUDIENCE,
      clockTolerance: config.clockTolerance,
      tokenType: config.tokenType,
    }),
  }
}

/** The URL a person types for the server: the host as given (localhost stays localhost), the port it got. */
export function serverUrl(host: string, port: number): string {
  const name = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
  return `http://${name}:${String(port)}`
}

/** What to do next, printed once the server listens: the client CLI's login, a resource, and a token for curl. */
export function nextSteps(server: string, issuer: string, deviceClientId: string, instancePath: string): string {
  const client = `npx ${PACKAGE_NAME}-client`
  // The token command finds the provider through the instance path: named unless it is the default.
  const where = instancePath === resolve(DEFAULT_INSTANCE_PATH) ? '' : ` --instance-path ${instancePath}`
  return [
    '',
    `Development identity provider at ${issuer}: anyone on this machine can sign in as any name. Never in production.`,
    '',
    'Next, in another terminal:',
    `  ${client} login --server ${server} --discovery-url ${issuer} --client-id ${deviceClientId}`,
    `  ${client} resource create my-resource --server ${server}`,
    `  ${client} resource list --server ${server}`,
    'or with curl, a token of the scripts client:',
    `  curl -H "Authorization: Bearer $(npx ${PACKAGE_NAME} token${where})" ${server}/api/greeting/v3/`,
    '',
  ].join('\n')
}

/** `token`: an access token of the scripts client, from the development provider of this instance path. */
export async function printToken(config: ServerConfig): Promise<void> {
  const file = join(config.instancePath, DEV_PROVIDER_FOLDER, DEV_CONNECTION_FILE)
  let connection: DevConnection
  try {
    connection = JSON.parse(readFileSync(file, 'utf8')) as DevConnection
  } catch (error) {
    throw new TokenError(`no development identity provider has run with --instance-path ${config.instancePath} `
      + `(cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): `
      + `start '${PACKAGE_NAME} dev' first`)
  }
  const credentials = `${encodeURIComponent(connection.client_id)}:${encodeURIComponent(connection.client_secret)}`
  const basic = Buffer.from(credentials)
  let response: Response
  try {
    response = await fetch(`${connection.issuer}/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${basic.toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: connection.scope }),
      signal: AbortSignal.timeout(10_000),
    })
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message
    throw new TokenError(`cannot reach the development identity provider at ${connection.issuer} (${cause}): `
      + `is '${PACKAGE_NAME} dev' running?`)
  }
  const body = await response.json().catch(() => ({})) as { access_token?: unknown, error?: unknown }
  if (!response.ok || typeof body.access_token !== 'string') {
    const reason = typeof body.error === 'string' ? ` ${body.error}` : ''
    throw new TokenError(`the development identity provider refused a token: ${String(response.status)}${reason}`)
  }
  process.stdout.write(`${body.access_token}\n`)
}
