import { readFileSync, readlinkSync } from 'node:fs'
import type { Server, IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

interface Connection {
  /** When it was accepted (ms since the epoch). */
  since: number
  /** Requests on it that have not been answered yet. */
  active: number
  /** Requests on it that have been answered. */
  answered: number
  /** socket.bytesRead when its last response was finished (0 before the first). */
  readAtRest: number
}

/**
 * How long a connection that has not sent a byte yet is waited for once the server is closing: it may have been
 * opened for a request still on its way (bytes in the kernel's buffers are not seen until read).
 */
const FIRST_REQUEST_GRACE_MS = 1_000
const SWEEP_EVERY_MS = 100

/**
 * Node's closeIdleConnections, which close() calls too, destroys every connection whose parser has not begun a
 * message: a client whose request is on its way (read but not yet parsed, or sent a moment before the shutdown) then
 * gets a reset instead of an answer. Idle here means what a client would call idle: nothing asked and nothing read
 * since the last answer. A connection with bytes of a new request is left to be read and answered (its answer carries
 * Connection: close, and the header and request timeouts bound a client that never finishes); one that has not sent a
 * byte yet is given a moment to, as its request may be on its way.
 */
export function closeOnlyIdleConnections(server: Server): { settle: (within: number) => Promise<void> } {
  const connections = new Map<Socket, Connection>()
  const accepted = { count: 0 }
  server.on('connection', (socket: Socket) => {
    accepted.count++
    connections.set(socket, { since: Date.now(), active: 0, answered: 0, readAtRest: 0 })
    socket.once('close', () => connections.delete(socket))
  })
  // One listener function for every response, not a closure and a once() wrapper a request: this is on every
  // request's path. A response closes once, and is dropped with its listener.
  function answered(this: ServerResponse): void {
    const socket = this.req.socket
    const connection = connections.get(socket)
    if (connection === undefined) return
    connection.active--
    connection.answered++
    connection.readAtRest = socket.bytesRead
  }
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const connection = connections.get(request.socket)
    if (connection === undefined) return
    connection.active++
    response.on('close', answered)
  })
  const sweep = (): void => {
    const now = Date.now()
    for (const [socket, connection] of connections) {
      const resting = connection.active === 0 && socket.bytesRead === connection.readAtRest
      const waitedFor = connection.answered > 0 || now - connection.since >= FIRST_REQUEST_GRACE_MS
      if (resting && waitedFor) socket.destroy()
    }
  }
  let sweeping: NodeJS.Timeout | undefined
  // close() calls it first: idle connections go at once, the others are looked at again until they are done.
  server.closeIdleConnections = function closeIdleConnections(): void {
    sweep()
    sweeping ??= setInterval(sweep, SWEEP_EVERY_MS).unref()
  }
  server.once('close', () => { clearInterval(sweeping) })
  return { settle: async (within: number) => settle(server, connections, accepted, within) }
}

/**
 * How many connections wait in the kernel's accept queue of the server's listening socket: on Linux, the rx_queue of
 * its line in /proc/self/net/tcp or tcp6 (found by the socket's inode). Undefined elsewhere, or when the listening
 * socket is not this process's own (a round-robin cluster worker's).
 */
export function acceptQueueLength(server: Server): number | undefined {
  const fd = (server as unknown as { _handle?: { fd?: number } | null })._handle?.fd
  if (fd === undefined || fd < 0) return undefined
  try {
    const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${String(fd)}`))?.[1]
    if (inode === undefined) return undefined
    for (const table of ['/proc/self/net/tcp', '/proc/self/net/tcp6']) {
      for (const line of readFileSync(table, 'utf8').split('\n')) {
        // sl local rem st tx_queue:rx_queue tr:when retrnsmt uid timeout inode ...
        const fields = line.trim().split(/\s+/)
        if (fields[9] === inode) return Number.parseInt(fields[4]?.split(':')[1] ?? '', 16)
      }
    }
  } catch {
    return undefined
  }
  return undefined
}

/** What the server has taken in so far: connections accepted and bytes read. */
function intake(connections: Map<Socket, Connection>): string {
  let read = 0
  for (const socket of connections.keys()) read += socket.bytesRead
  return `${String(connections.size)}:${String(read)}`
}

/**
 * Lets the event loop take in what has already arrived before the listener closes: connections waiting in the
 * kernel's accept queue (closing the listener resets them) and bytes waiting on accepted ones (unread, they would look
 * idle).
 *
 * libuv accepts one connection per turn of the event loop (libuv/libuv#3696; measured with Node 20's libuv 1.46), and
 * under load a turn takes as long as the requests it reads: a few turns are not enough. Where the queue can be seen
 * (Linux), the turns go on until this process has accepted as many connections as were queued when settling began
 * (each accept takes the oldest, so those are then all taken, whoever shares the socket), or the queue is empty, or
 * `within` ms have passed.
 * Then at least three turns more, until a turn brings nothing new, 100 ms at most.
 */
async function settle(server: Server, connections: Map<Socket, Connection>, accepted: { count: number },
  within: number): Promise<void> {
  const queued = acceptQueueLength(server)
  if (queued !== undefined && queued > 0) {
    const start = accepted.count
    const drainBy = Date.now() + within
    while (Date.now() < drainBy && accepted.count - start < queued && (acceptQueueLength(server) ?? 0) > 0) {
      await new Promise(setImmediate)
    }
  }
  const deadline = Date.now() + 100
  let before = intake(connections)
  for (let turn = 0; Date.now() < deadline; turn++) {
    await new Promise(setImmediate)
    const after = intake(connections)
    if (turn >= 2 && after === before) return
    before = after
  }
}
