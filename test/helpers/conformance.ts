import { createRequire } from 'node:module'
import addFormats from 'ajv-formats'
import { OpenAPIBackend, SetMatchType, type Document, type Operation } from 'openapi-backend'
import type {
  IOpenAPIResponseValidator as ResponseValidator, OpenAPIResponseValidatorArgs,
} from 'openapi-response-validator'
import type { FastifyInstance } from 'fastify'

// CommonJS with the class on `default`, which an ES import of it does not unwrap.
const { default: OpenAPIResponseValidator } = createRequire(import.meta.url)('openapi-response-validator') as {
  default: new (args: OpenAPIResponseValidatorArgs) => ResponseValidator
}

/*
 * Every answer the suite gets through send() from an app is checked against the OpenAPI document that app serves, as a
 * validating proxy in front of it would: openapi-backend finds the operation, checks the request (a request the server
 * served must be one the document allows) and the response headers; openapi-response-validator checks the status and
 * the body against the documented response. A mismatch throws, so the test that saw it fails.
 */

export interface Exchange {
  method: string
  /** Path and query, or an absolute URL. */
  path: string
  headers: Record<string, string>
  body: string | Buffer | undefined
}

export interface Received {
  status: number
  headers: Record<string, string | undefined>
  text: string
  body: unknown
}

interface Checker {
  backend: OpenAPIBackend
  /** Body validators by operation id and status, compiled on first use. */
  bodies: Map<string, ResponseValidator>
}

const checkers = new Map<string, Promise<Checker>>()

async function checkerFor(document: object): Promise<Checker> {
  const key = JSON.stringify(document)
  let checker = checkers.get(key)
  if (checker === undefined) {
    // A copy: the libraries dereference and annotate what they are given.
    const definition = JSON.parse(key) as Document
    const backend = new OpenAPIBackend({
      definition, strict: false, quick: true, validate: true, coerceTypes: true,
      // The document's formats (uri: Location, next) are checked, not ignored with a warning.
      customizeAjv: (ajv) => {
        addFormats.default(ajv)
        return ajv
      },
    })
    checker = backend.init().then(() => ({ backend, bodies: new Map<string, ResponseValidator>() }))
    checkers.set(key, checker)
  }
  return checker
}

function mediaType(contentType: string | undefined): string | undefined {
  return contentType?.split(';')[0]?.trim().toLowerCase()
}

function parsedBody(exchange: Exchange): unknown {
  if (exchange.body === undefined) return undefined
  try {
    return JSON.parse(exchange.body.toString()) as unknown
  } catch {
    return exchange.body.toString()
  }
}

/** The documented response of a status: its own entry, its range (4XX), or default. */
function documented(
  operation: Operation,
  status: number,
): { key: string, response: Record<string, unknown> } | undefined {
  const responses = (operation.responses ?? {}) as Record<string, Record<string, unknown>>
  for (const key of [String(status), `${String(status)[0]}XX`, 'default']) {
    const response = responses[key]
    if (response !== undefined) return { key, response }
  }
  return undefined
}

/** Throws when the app's own document does not describe this exchange; returns quietly when it does. */
export async function checkConformance(app: FastifyInstance, exchange: Exchange, received: Received): Promise<void> {
  // A host app without the OpenAPI plugin publishes no contract to hold it to.
  if (!app.hasDecorator('swagger')) return
  const { backend, bodies } = await checkerFor(app.swagger())
  const url = new URL(exchange.path, 'http://conformance.invalid')
  const request = {
    method: exchange.method.toLowerCase(),
    path: url.pathname,
    query: url.search.slice(1),
    headers: Object.fromEntries(Object.entries(exchange.headers).map(([name, value]) => [name.toLowerCase(), value])),
    body: parsedBody(exchange),
  }
  const operation = backend.matchOperation(request)
  // Not an operation of the API (an unknown path, a method the route lacks, or a route a test added, which has no
  // operationId: openapi.test.ts holds every API route to having one): nothing to hold the answer to.
  if (operation?.operationId === undefined) return
  const where = `${exchange.method} ${exchange.path} (${operation.operationId}) answered ${received.status}`
  const failures: string[] = []

  if (received.status < 400) {
    const checked = backend.validateRequest(request, operation)
    if (!checked.valid) {
      failures.push(`the server served a request the document refuses: ${JSON.stringify(checked.errors)}`)
    }
  }

  const response = documented(operation, received.status)
  if (response === undefined) throw new Error(`OpenAPI conformance: ${where}, a status the document does not list`)

  const content = response.response.content as Record<string, unknown> | undefined
  if (received.text !== '') {
    const type = mediaType(received.headers['content-type'])
    if (content === undefined || type === undefined || !(type in content)) {
      failures.push(`content-type ${String(type)} is not among the documented ${Object.keys(content ?? {}).join(', ')}`)
    }
  } else if (content !== undefined && received.status !== 204) {
    failures.push('no body, where the document describes one')
  }

  // openapi-backend checks the values of the headers present (its stricter mode wants every documented header,
  // ignoring `required`); a header the document says is always there is looked for here.
  const headers = backend.validateResponseHeaders(received.headers, operation, {
    statusCode: received.status,
    setMatchType: SetMatchType.Any,
  })
  if (!headers.valid) failures.push(`headers: ${JSON.stringify(headers.errors)}`)
  const declared = (response.response.headers ?? {}) as Record<string, { required?: boolean }>
  for (const [name, header] of Object.entries(declared)) {
    if (header.required === true && received.headers[name.toLowerCase()] === undefined) {
      failures.push(`headers: the required ${name} is missing`)
    }
  }

  if (content !== undefined && received.text !== '') {
    const cacheKey = `${operation.operationId} ${response.key}`
    let validator = bodies.get(cacheKey)
    if (validator === undefined) {
      validator = new OpenAPIResponseValidator({
        responses: { [response.key]: response.response } as OpenAPIResponseValidatorArgs['responses'],
      })
      bodies.set(cacheKey, validator)
    }
    const problem = validator.validateResponse(response.key, received.body)
    if (problem !== undefined) failures.push(`body: ${JSON.stringify(problem.errors)}`)
  }

  if (failures.length > 0) throw new Error(`OpenAPI conformance: ${where}; ${failures.join('; ')}`)
}
