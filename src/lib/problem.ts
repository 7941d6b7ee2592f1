import { STATUS_CODES } from 'node:http'
import { Type, type Static } from '@sinclair/typebox'

/**
 * RFC 9457 problem details. Every error the server sends has this shape, so it is declared once and
 * used both to document error responses in OpenAPI and to serialise them.
 */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json'

/** Where the problem types this server defines are documented. */
export const PROBLEM_TYPE_BASE = 'https://github.com/MrMatAP/mrmat-ts-api-fastify/blob/main/README.md#problem-'

export const ProblemTypes = {
  validation: `${PROBLEM_TYPE_BASE}validation-failed`,
  notReady: `${PROBLEM_TYPE_BASE}not-ready`,
  tokenRequired: `${PROBLEM_TYPE_BASE}token-required`,
  invalidToken: `${PROBLEM_TYPE_BASE}invalid-token`,
  insufficientScope: `${PROBLEM_TYPE_BASE}insufficient-scope`,
  authNotConfigured: `${PROBLEM_TYPE_BASE}authentication-not-configured`,
  providerUnavailable: `${PROBLEM_TYPE_BASE}identity-provider-unavailable`,
  databaseUnavailable: `${PROBLEM_TYPE_BASE}database-unavailable`,
} as const

export const InvalidParamSchema = Type.Object(
  {
    in: Type.Unsafe<'body' | 'query' | 'path' | 'header'>({
      type: 'string',
      enum: ['body', 'query', 'path', 'header'],
      description: 'Where the field is',
    }),
    name: Type.String({ description: 'The offending field, as a JSON pointer into its location' }),
    detail: Type.String(),
  },
  { additionalProperties: false },
)
export type InvalidParam = Static<typeof InvalidParamSchema>

export const ProblemSchema = Type.Object(
  {
    type: Type.String({ description: 'A URI identifying the kind of problem; about:blank for a plain HTTP status' }),
    title: Type.String(),
    status: Type.Integer({ minimum: 400, maximum: 599 }),
    detail: Type.String(),
    instance: Type.Optional(Type.String({ description: 'The path of the request that failed' })),
    requestId: Type.Optional(Type.String({
      description: 'Also sent as the x-request-id header; quote it when reporting a problem',
    })),
    errors: Type.Optional(Type.Array(InvalidParamSchema, { description: 'The fields that failed validation' })),
  },
  { additionalProperties: false, description: 'RFC 9457 problem details' },
)
export type Problem = Static<typeof ProblemSchema>

/**
 * An error whose detail is safe to show the client. Anything else that reaches the error handler
 * becomes an opaque 500.
 */
export class HttpProblem extends Error {
  readonly statusCode: number
  readonly type: string
  readonly title: string
  readonly errors: InvalidParam[] | undefined
  readonly headers: Record<string, string>
  /** Why, in one word for metrics (`expired`, `missing`, …): never sent to the client. */
  readonly reason: string | undefined

  constructor(
    statusCode: number,
    detail: string,
    options: {
      type?: string, title?: string, errors?: InvalidParam[], headers?: Record<string, string>, reason?: string
    } = {},
  ) {
    // A problem is an answer to the client, not a fault of the server: where it was thrown tells nobody anything, and
    // capturing the stack was the largest part of a refusal's cost (see the README's Performance, "Refusals").
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super(detail)
    Error.stackTraceLimit = limit
    this.name = 'HttpProblem'
    this.statusCode = statusCode
    this.type = options.type ?? 'about:blank'
    this.title = options.title ?? statusTitle(statusCode)
    this.errors = options.errors
    this.headers = options.headers ?? {}
    this.reason = options.reason
  }
}

export function statusTitle(status: number): string {
  return STATUS_CODES[status] ?? 'Error'
}

const PROBLEM_DESCRIPTIONS: Record<number, string> = {
  400: 'The request is malformed or failed validation',
  401: 'No valid bearer token was presented',
  403: 'The token lacks a required scope or the caller may not touch this object',
  404: 'No such route or object',
  405: 'The route exists but not for this method',
  409: 'The request conflicts with the current state',
  413: 'The request body is too large',
  415: 'The request body has an unsupported media type',
  500: 'An unexpected error; the body carries no internals',
  503: 'The server is overloaded, or a dependency (the identity provider, for readiness the database) is not available',
}

/** A response header as the OpenAPI document shows it; `x-required` becomes the header's `required` (openapi.ts). */
export interface HeaderDoc {
  type: 'string' | 'integer'
  description: string
  format?: string
  'x-required'?: boolean
}

/**
 * The headers an error status carries. 401 always challenges (RFC 6750); 403 only when a scope is missing (a resource
 * of someone else's is refused without one); 503 says when to retry when the cause passes (load, the provider), not
 * when readiness fails.
 */
const PROBLEM_HEADERS: Record<number, Record<string, HeaderDoc>> = {
  401: {
    'WWW-Authenticate': {
      type: 'string',
      description: 'The RFC 6750 challenge: `Bearer realm="…"`, with `error="invalid_token"` for a bad token',
      'x-required': true,
    },
  },
  403: {
    'WWW-Authenticate': {
      type: 'string',
      description: 'When a scope is missing: `Bearer …, error="insufficient_scope", scope="…"`',
    },
  },
  503: {
    'Retry-After': {
      type: 'integer',
      description: 'Seconds to wait before retrying, when the server is overloaded or the identity provider is away',
    },
  },
}

/**
 * Response schemas for the error statuses a route can answer, keyed by content type so that OpenAPI
 * documents them as application/problem+json and Fastify serialises them with the same schema. 500 is
 * always among them: any route can fail.
 */
export function problemResponses(...statuses: number[]): Record<number, unknown> {
  const responses: Record<number, unknown> = {}
  for (const status of [...new Set([...statuses, 500])].sort()) {
    const headers = PROBLEM_HEADERS[status]
    responses[status] = {
      description: PROBLEM_DESCRIPTIONS[status] ?? statusTitle(status),
      ...(headers === undefined ? {} : { headers }),
      content: { [PROBLEM_CONTENT_TYPE]: { schema: ProblemSchema } },
    }
  }
  return responses
}

/** A JSON success response with the headers it carries, for the routes whose answer is more than a body. */
export function jsonResponse(
  description: string,
  schema: unknown,
  headers: Record<string, HeaderDoc>,
): Record<string, unknown> {
  return { description, headers, content: { 'application/json': { schema } } }
}
