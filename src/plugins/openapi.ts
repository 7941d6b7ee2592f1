import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { ApiTag } from '../lib/openapi-tags.js'
import { importExternal } from '../lib/import-external.js'
import { packageVersion } from '../lib/package-info.js'
import { HttpProblem } from '../lib/problem.js'

// The inline <style> of Swagger UI's own SVG logo (swagger-api/swagger-ui#10655).
const SWAGGER_LOGO_STYLE = "'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='"

/**
 * The plugin's default CSP, amended: upgrade-insecure-requests sends a browser that reached the docs
 * over plain HTTP by any name but localhost to https:// for every asset (a blank page behind a
 * TLS-less proxy), and the validator host is never contacted since the validator is off.
 */
function docsCsp(header: string): string {
  return header
    .replace(/\s*upgrade-insecure-requests;/, '')
    .replace(' validator.swagger.io', '')
    .replace("style-src 'self' https:", `style-src 'self' https: ${SWAGGER_LOGO_STYLE}`)
}

interface HeaderObject { required?: boolean, schema?: Record<string, unknown> }

/**
 * @fastify/swagger copies a response header's schema whole and has no way to say that the header is always there; a
 * header schema marked `x-required` (see HeaderDoc) is made a required header instead. Operates on the document in
 * place: it is generated afresh for each call.
 */
function requireMarkedHeaders<T extends object>(document: T): T {
  const paths = (document as { paths?: Record<string, Record<string, { responses?: Record<string, unknown> }>> }).paths
  for (const operation of Object.values(paths ?? {}).flatMap((item) => Object.values(item))) {
    for (const response of Object.values(operation.responses ?? {})) {
      const headers = (response as { headers?: Record<string, HeaderObject> }).headers ?? {}
      for (const header of Object.values(headers)) {
        if (header.schema?.['x-required'] !== true) continue
        delete header.schema['x-required']
        header.required = true
      }
    }
  }
  return document
}

export interface OpenApiOptions {
  /** Serve Swagger UI at /docs/. On by default. */
  ui?: boolean
}

/**
 * The OpenAPI 3.1 document, generated from the routes' TypeBox schemas, at /openapi.json, and Swagger
 * UI with its own assets (no CDN) at /docs/. Register before the API plugins so it sees their routes.
 */
async function openapi(fastify: FastifyInstance, options: OpenApiOptions): Promise<void> {
  // Each API plugin adds its own tag (documentTag), in the order they are registered.
  const tags: ApiTag[] = []
  fastify.decorate('openapiTags', tags)
  await fastify.register(swagger, {
    transformObject: (document) => ('openapiObject' in document
      ? requireMarkedHeaders({ ...document.openapiObject, tags })
      : document.swaggerObject),
    openapi: {
      openapi: '3.1.0',
      // Relative: the document describes the server that serves it, under whatever name or prefix it is reached.
      servers: [{ url: '/', description: 'The server that serves this document' }],
      info: {
        title: 'mrmat-ts-api-fastify',
        description: 'A versioned, authenticated, database-backed REST API. Errors are RFC 9457 problem details.',
        version: packageVersion,
        license: { name: 'MIT', identifier: 'MIT' },
      },
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            bearerFormat: 'JWT',
            description: 'An access token of the configured OpenID provider, for this API\'s audience '
              + '(JWT, or opaque when the provider offers introspection)',
          },
        },
      },
    },
  })

  fastify.get('/openapi.json', { schema: { hide: true } }, async () => fastify.swagger())

  if (options.ui !== false) swaggerUiOnDemand(fastify)
}

/** Hop-by-hop and length headers of an answer relayed from Swagger UI's own instance: this server writes its own. */
const NOT_RELAYED = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'date'])

/** A path of one of Swagger UI's asset files, spelled one way only, so that each file is kept once. */
const ASSET_PATH = /^\/docs\/static\/[\w-][\w.-]*$/
/** More than Swagger UI has files: a bound in case a name the pattern allows answers too. */
const MAX_KEPT_ASSETS = 64

type Headers = Record<string, string | string[] | number | undefined>

/**
 * Swagger UI at /docs, loaded on its first request: its plugin, @fastify/static and yaml were about a sixth of the
 * server's start, and most servers are never asked for their docs. Its routes then run in a Fastify instance of their
 * own that reads this one's document, and /docs and everything under it is relayed there; a path it does not know is
 * this server's 404, and any other failure this server's problem details. The answers are Swagger UI's own, headers
 * (its CSP, ETag, caching) included.
 *
 * inject holds an answer whole (@fastify/static would have streamed it), and swagger-ui-bundle.js is 1.4 MB: an
 * asset's bytes are therefore read once and kept, and every request for it sends that one buffer. Its file server
 * still judges each request, by a HEAD of it (conditional headers, 304, its headers), which reads no file.
 */
function swaggerUiOnDemand(fastify: FastifyInstance): void {
  let loading: Promise<FastifyInstance> | undefined
  const load = async (): Promise<FastifyInstance> => {
    const { default: swaggerUi } = await importExternal<typeof import('@fastify/swagger-ui')>('@fastify/swagger-ui')
    const ui = Fastify({ routerOptions: { ignoreTrailingSlash: true } })
    // Swagger UI depends on @fastify/swagger by name, and serves the document through its decorator.
    await ui.register(fp(async (instance) => {
      instance.decorate('swagger', fastify.swagger.bind(fastify))
    }, { name: '@fastify/swagger' }))
    await ui.register(swaggerUi, {
      routePrefix: '/docs',
      uiConfig: { docExpansion: 'list', deepLinking: true, tryItOutEnabled: false },
      validatorUrl: false,
      staticCSP: true,
      transformStaticCSP: docsCsp,
    })
    await ui.ready()
    return ui
  }
  /** Each asset's bytes by path, with the ETag they were read under; concurrent first requests share one read. */
  const kept = new Map<string, Promise<{ etag: unknown, payload: Buffer } | undefined>>()
  const keptPayload = async (ui: FastifyInstance, path: string, etag: unknown): Promise<Buffer | undefined> => {
    const known = await kept.get(path)
    if (known !== undefined && known.etag === etag) return known.payload
    if (!kept.has(path) && kept.size >= MAX_KEPT_ASSETS) return undefined
    const read = ui.inject({ method: 'GET', url: path }).then((answer) => answer.statusCode === 200
      ? { etag: answer.headers.etag, payload: answer.rawPayload }
      : undefined)
    kept.set(path, read)
    read.then((value) => { if (value === undefined) kept.delete(path) }, () => kept.delete(path))
    const value = await read
    return value !== undefined && value.etag === etag ? value.payload : undefined
  }
  const relay = async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    loading ??= load().catch((error: unknown) => {
      loading = undefined
      throw error
    })
    const ui = await loading
    // Under a host app's prefix, the path Swagger UI knows is the part after it.
    const url = request.url.startsWith(fastify.prefix) ? request.url.slice(fastify.prefix.length) : request.url
    const path = url.split('?', 1)[0] ?? url
    if (ASSET_PATH.test(path)) {
      // Sent whole from what is kept: a Range is not served, and Accept-Ranges is not relayed.
      const headers = Object.fromEntries(Object.entries(request.headers)
        .filter(([name]) => name !== 'range' && name !== 'if-range'))
      const head = await ui.inject({ method: 'HEAD', url, headers })
      if (head.statusCode === 304) return relayed(reply, head, head.rawPayload, true)
      const payload = head.statusCode === 200 ? await keptPayload(ui, path, head.headers.etag) : undefined
      if (payload !== undefined) return relayed(reply, head, payload, true)
      // Anything else (no such file, the bound, the file changed meanwhile): relayed as any other answer.
    }
    const answer = await ui.inject({ method: request.method === 'HEAD' ? 'HEAD' : 'GET', url,
      headers: request.headers })
    if (answer.statusCode === 404) {
      reply.callNotFound()
      return reply
    }
    // Any other failure of Swagger UI's is this server's problem details too, never its own JSON.
    if (answer.statusCode >= 400) {
      throw new HttpProblem(answer.statusCode, `Swagger UI could not answer ${request.method} ${url}`)
    }
    return relayed(reply, answer, answer.rawPayload, false)
  }
  fastify.get('/docs', { schema: { hide: true } }, relay)
  fastify.get('/docs/*', { schema: { hide: true } }, relay)
  fastify.addHook('onClose', async () => {
    const ui = await loading?.catch(() => undefined)
    await ui?.close()
  })
}

/** An answer of Swagger UI's instance as this server's, with the given payload. */
function relayed(reply: FastifyReply, answer: { statusCode: number, headers: Headers }, payload: Buffer,
  asset: boolean): FastifyReply {
  for (const [name, value] of Object.entries(answer.headers)) {
    if (value !== undefined && !NOT_RELAYED.has(name) && !(asset && name === 'accept-ranges')) {
      void reply.header(name, value)
    }
  }
  return reply.code(answer.statusCode).send(payload)
}

export default fp(openapi, { name: 'mrmat-openapi', fastify: '5.x' })
