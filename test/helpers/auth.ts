import type { Test } from 'tap'
import { readClientSecrets, resolveAuthSettings, type AuthSettings } from '#src/plugins/auth/settings.js'
import { deviceTokens, type TestProvider } from '../fixtures/oidc-provider.js'
import { folder } from './folder.js'
import type { Answer } from './http.js'

export const READ_SCOPE = 'mrmat-ts-api-fastify-resource-read'
export const WRITE_SCOPE = 'mrmat-ts-api-fastify-resource-write'

/** The problem types as the README documents them, written out so that a changed URL fails here. */
const PROBLEM_BASE = 'https://github.com/MrMatAP/mrmat-ts-api-fastify/blob/main/README.md#problem-'
export const Problems = {
  tokenRequired: `${PROBLEM_BASE}token-required`,
  invalidToken: `${PROBLEM_BASE}invalid-token`,
  insufficientScope: `${PROBLEM_BASE}insufficient-scope`,
  notConfigured: `${PROBLEM_BASE}authentication-not-configured`,
  unavailable: `${PROBLEM_BASE}identity-provider-unavailable`,
  validation: `${PROBLEM_BASE}validation-failed`,
  notReady: `${PROBLEM_BASE}not-ready`,
} as const

/** AuthSettings the way a user gets them: the provider's client-secrets file, and the API's audience. */
export async function settingsFromSecrets(t: Test, provider: TestProvider): Promise<AuthSettings> {
  const settings = resolveAuthSettings({
    secrets: readClientSecrets(await provider.writeClientSecrets(folder(t))),
    audience: provider.audience,
  })
  if (settings === undefined) throw new Error('the client secrets gave no auth settings')
  return settings
}

export interface Challenge {
  scheme: string
  params: Record<string, string>
}

/** The answer's WWW-Authenticate header, one challenge, its auth-params as a map. */
export function challengeOf(answer: Answer): Challenge | undefined {
  const header = answer.headers['www-authenticate']
  if (header === undefined) return undefined
  const match = /^(\S+)\s*(.*)$/.exec(header)
  if (match === null) return undefined
  const params: Record<string, string> = {}
  for (const [, name = '', value = ''] of (match[2] ?? '').matchAll(/([\w-]+)="([^"]*)"/g)) params[name] = value
  return { scheme: match[1] ?? '', params }
}

/** Whether any header or the body of the answer holds the text (a token, say). */
export function echoes(answer: Answer, text: string): boolean {
  return answer.text.includes(text) || Object.values(answer.headers).some((value) => value?.includes(text) === true)
}

const base64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')

/** A JWT with `alg: none` and no signature: header.payload. */
export function unsignedJwt(header: Record<string, unknown>, payload: Record<string, unknown>): string {
  return `${base64url({ ...header, alg: 'none' })}.${base64url(payload)}.`
}

/** The token's payload with some claims changed, its header and signature kept. */
export function tamper(jwt: string, changes: Record<string, unknown>): string {
  const [header = '', payload = '', signature = ''] = jwt.split('.')
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>
  return `${header}.${base64url({ ...claims, ...changes })}.${signature}`
}

/**
 * An opaque access token in a person's name (device flow, resource = the opaque indicator). Unlike the opaque()
 * tokens of client credentials, its introspection answer carries `sub`.
 */
export async function personOpaqueToken(provider: TestProvider, login: string, scope = READ_SCOPE): Promise<string> {
  const { access_token: token } = await deviceTokens(provider, login, { scope, resource: provider.resources.opaque })
  if (token.includes('.')) throw new Error('the device flow gave a JWT, not an opaque token')
  return token
}
