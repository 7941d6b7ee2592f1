import type { Duplex } from 'node:stream'
import FindMyWay, { type HTTPMethod } from 'find-my-way'
import fp from 'fastify-plugin'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import {
  HttpProblem,
  PROBLEM_CONTENT_TYPE,
  ProblemTypes,
  statusTitle,
  type InvalidParam,
  type Problem,
} from '../lib/problem.js'

import { isDatabaseUnavailable } from './database/database.js'

export { HttpProblem } from '../lib/problem.js'

/** Seconds a client is told to wait before retrying when the database is unavailable. */
const DATABASE_RETRY_AFTER = '5'

type ValidationError = NonNullable<FastifyError['validation']>[number]

const LOCATIONS: Record<string, InvalidParam['in']> = {
  body: 'body',
  querystring: 'query',
  params: 'path',
  headers: 'header',
}

/**
 * The most fields a validation problem lists; the detail counts the rest, so that a hostile request gets a short
 * answer.
 */
export const LISTED_ERRORS = 10

function invalidParams(error: FastifyError): InvalidParam[] {
  const where = LOCATIONS[error.validationContext ?? 'body'] ?? 'body'
  return (error.validation ?? []).slice(0, LISTED_ERRORS).map((v: ValidationError) => {
    const params: Record<string, unknown> = v.params
    // ajv reports a missing or extra property on the parent object; point at the property itself.
    const child = params.missingProperty ?? params.additionalProperty
    const pointer = typeof child === 'string' ? `${v.instancePath}/${child}` : v.instancePath
    return { in: where, name: pointer === '' ? '/' : pointer, detail: v.message ?? 'is invalid' }
  })
}

function describe(params: InvalidParam[], total: number): string {
  const first = params[0]
  if (first === undefined) return 'The request failed validation'
  const more = total > 1 ? ` (and ${total - 1} more)` : ''
  return `The ${first.in} field ${first.name} ${first.detail}${more}`
}

/**
 * The error Fastify raises when a request fails its schema (its schemaErrorFormatter), with Fastify's own message: a
 * problem, made without a stack trace as every problem is. Fastify's default formatter makes a plain Error, and its
 * stack was most of what a 400 cost (see the README's Performance, "Refusals").
 */
function validationFailure(errors: ValidationError[], dataVar: string): Error {
  const message = errors.map((e) => `${dataVar}${e.instancePath} ${e.message ?? 'is invalid'}`).join(', ')
  return new HttpProblem(400, message, { type: ProblemTypes.validation, title: 'Validation failed' })
}

/** Turns anything thrown during a request into the problem the client sees. */
export function toProblem(error: FastifyError | HttpProblem, request: FastifyRequest): {
  problem: Problem
  headers: Record<string, string>
} {
  const base = { instance: request.url.split('?', 1)[0], requestId: request.id }
  // Before HttpProblem: a validation failure is one (see validationFailure) with Fastify's findings added.
  if ('validation' in error && error.validation !== undefined) {
    const errors = invalidParams(error)
    return {
      problem: {
        type: ProblemTypes.validation,
        title: 'Validation failed',
        status: 400,
        detail: describe(errors, error.validation.length),
        ...base,
        errors,
      },
      headers: {},
    }
  }
  if (error instanceof HttpProblem) {
    return {
      problem: {
        type: error.type,
        title: error.title,
        status: error.statusCode,
        detail: error.message,
        ...base,
        ...(error.errors === undefined ? {} : { errors: error.errors }),
      },
      headers: error.headers,
    }
  }
  const status = error.statusCode
  // Fastify's own client errors (bad JSON, body too large, unsupported media type, ...) carry a
  // status below 500 and a message written for the client.
  if (status !== undefined && status >= 400 && status < 500) {
    return {
      problem: { type: 'about:blank', title: statusTitle(status), status, detail: error.message, ...base },
      headers: {},
    }
  }
  if (isDatabaseUnavailable(error)) {
    return {
      problem: {
        type: ProblemTypes.databaseUnavailable,
        title: 'Database unavailable',
        status: 503,
        detail: 'The database cannot be reached or cannot take this request now; retry later.',
        ...base,
      },
      headers: { 'retry-after': DATABASE_RETRY_AFTER },
    }
  }
  return {
    problem: {
      type: 'about:blank',
      title: statusTitle(500),
      status: 500,
      detail: 'An unexpected error occurred. Quote the request id when reporting it.',
      ...base,
    },
    headers: {},
  }
}

export function sendProblem(reply: FastifyReply, problem: Problem, headers: Record<string, string> = {}): FastifyReply {
  return reply
    .code(problem.status)
    .headers(headers)
    .type(PROBLEM_CONTENT_TYPE)
    .send(problem)
}

const METHODS: HTTPMethod[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']

/**
 * Answers every error as RFC 9457 problem details: route errors, validation, unknown routes (404),
 * known routes called with the wrong method (405, with Allow), and Fastify's own framework errors.
 * Register it before any route so that it sees every route for the 405 check.
 */
async function problemDetails(fastify: FastifyInstance): Promise<void> {
  // Fastify answers a wrong method with 404; a second router of the same routes tells 405 apart.
  const known = FindMyWay({ ignoreTrailingSlash: true, ignoreDuplicateSlashes: false })
  fastify.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    for (const method of methods) {
      if (!METHODS.includes(method as HTTPMethod)) continue
      if (known.hasRoute(method as HTTPMethod, route.url)) continue
      known.on(method as HTTPMethod, route.url, () => undefined)
    }
  })

  fastify.setSchemaErrorFormatter(validationFailure)
  fastify.setErrorHandler((error: FastifyError, request, reply) => {
    const { problem, headers } = toProblem(error, request)
    if (problem.status >= 500 && !(error instanceof HttpProblem)) {
      request.log.error({ err: error }, 'request failed')
    } else {
      request.log.info({ status: problem.status, detail: problem.detail }, 'request refused')
    }
    return sendProblem(reply, problem, headers)
  })

  fastify.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?', 1)[0] ?? '/'
    const allowed = METHODS.filter((method) => known.find(method, path) !== null)
    // A route that takes this method and still found nothing (a file under a static folder, say) is a 404.
    if (allowed.length > 0 && !allowed.includes(request.method as HTTPMethod)) {
      return sendProblem(
        reply,
        {
          type: 'about:blank',
          title: statusTitle(405),
          status: 405,
          detail: `${request.method} is not allowed here; use ${allowed.join(', ')}`,
          instance: path,
          requestId: request.id,
        },
        { allow: allowed.join(', ') },
      )
    }
    return sendProblem(reply, {
      type: 'about:blank',
      title: statusTitle(404),
      status: 404,
      detail: `There is no route ${request.method} ${path}`,
      instance: path,
      requestId: request.id,
    })
  })
}

export default fp(problemDetails, { name: 'mrmat-problem-details', fastify: '5.x' })

/** For Fastify's frameworkErrors option: errors raised before routing (a malformed URL, say). */
export function frameworkErrorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  reply.header('x-request-id', request.id)
  const { problem } = toProblem(error, request)
  void sendProblem(reply, problem)
}

const CLIENT_ERRORS: Record<string, { status: number, detail: string }> = {
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, detail: 'The request was not received in time' },
  HPE_HEADER_OVERFLOW: { status: 431, detail: 'The request headers are too large' },
}

/**
 * For Fastify's clientErrorHandler option: requests Node's HTTP parser rejects (bad framing, header
 * overflow, timeouts) never reach a route, so answer them as problem details straight on the socket.
 */
export function clientErrorHandler(this: FastifyInstance, error: NodeJS.ErrnoException, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  const { status, detail } = CLIENT_ERRORS[error.code ?? '']
    ?? { status: 400, detail: 'The request could not be parsed as HTTP' }
  const body = JSON.stringify({ type: 'about:blank', title: statusTitle(status), status, detail } satisfies Problem)
  this.log.debug({ err: error }, 'client error')
  // A response under way on this socket (Node's _httpMessage, set until it is finished) would be corrupted by a
  // second status line: it is let finish, and the connection closed after it.
  const answering = (socket as Duplex & { _httpMessage?: { writableFinished: boolean, once: Duplex['once'] } | null })
    ._httpMessage
  if (answering !== undefined && answering !== null && !answering.writableFinished) {
    answering.once('finish', () => socket.destroy())
    return
  }
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${statusTitle(status)}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\n`
      + `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    )
  }
  socket.destroy(error)
}
