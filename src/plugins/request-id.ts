import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'

export const REQUEST_ID_HEADER = 'x-request-id'

// Short, printable and free of separators: safe to log and to echo in a header.
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

// A new id has a UUID's shape: its first 80 bits (74 random, 6 the version and variant) are drawn once a process,
// its last 48 count the process's requests. Unique within the process by the counter and across processes and
// restarts by the random part; half of what a fresh randomUUID() costs a request. Request ids are labels, not
// secrets: nothing relies on guessing them.
const ID_PREFIX = randomUUID().slice(0, 24)
let idCounter = 0

/** For Fastify's genReqId option: the caller's id when it is sane, a new UUID-shaped id otherwise. */
export function genRequestId(req: IncomingMessage): string {
  const given = req.headers[REQUEST_ID_HEADER]
  if (typeof given === 'string' && SANE_REQUEST_ID.test(given)) return given
  idCounter = (idCounter + 1) % 0x1000000000000
  return ID_PREFIX + idCounter.toString(16).padStart(12, '0')
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
