import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import problemDetails from '../plugins/problem-details.js'
import { createServer } from '../server.js'

export interface MetricsServerOptions {
  host: string
  port: number
  log: FastifyBaseLogger
  /** The metrics in the Prometheus text format, and its content type. */
  collect: () => Promise<{ contentType: string, text: string }>
}

/**
 * GET /metrics on a port of its own (--metrics-port), apart from the API: bound to --metrics-host (loopback by
 * default), so that a proxy in front of the API never exposes it. Anything else, and a failed collection, is a problem
 * (RFC 9457) like every error of the server. No access log: a scrape every few seconds would drown the API's lines.
 */
export async function startMetricsServer(options: MetricsServerOptions): Promise<FastifyInstance> {
  const server = createServer({ loggerInstance: options.log, accessLog: false })
  await server.register(problemDetails)
  server.get('/metrics', async (_request, reply) => {
    const { contentType, text } = await options.collect()
    return reply.type(contentType).send(text)
  })
  // Not "Server listening at": that line is the API's, which scripts and tests wait for.
  await server.listen({ host: options.host, port: options.port,
    listenTextResolver: (address) => `Metrics listening at ${address}` })
  return server
}
