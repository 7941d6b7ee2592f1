import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'

export const REQUEST_ID_HEADER = 'x-request-id'

// Short, printable and free of separators: safe to log and to echo in a header.
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** For Fastify's genReqId option: the caller's id when it is sane, a new UUID otherwise. */
export function genRequestId(req: IncomingMessage): string {
  const given = req.headers[REQUEST_ID_HEADER]
  return typeof given === 'string' && SANE_REQUEST_ID.test(given) ? given : randomUUID()
}

/** Echoes the request id on every response, errors and 404s included. */
async function requestId(fastify: FastifyInstance): Promise<void> {
  // Callback style: it runs on every request, and an async hook would cost a promise each time.
  fastify.addHook('onRequest', (request, reply, done) => {
    reply.header(REQUEST_ID_HEADER, request.id)
    done()
  })
}

export default fp(requestId, { name: 'mrmat-request-id', fastify: '5.x' })
