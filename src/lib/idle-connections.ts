import type { Server, IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

interface Connection {
  /** Requests on it that have not been answered yet. */
  active: number
  /** socket.bytesRead when its last response was finished (0 before the first). */
  readAtRest: number
}

/**
 * Node's closeIdleConnections, which close() calls too, destroys every connection whose parser has not begun a
 * message: a client whose request is on its way (read but not yet parsed, or sent a moment before the shutdown) then
 * gets a reset instead of an answer. Idle here means what a client would call idle: nothing asked and nothing read
 * since the last answer (or since connecting). A connection with bytes of a new request is left to be read and
 * answered; its answer carries Connection: close, and the header and request timeouts bound a client that never
 * finishes.
 */
export function closeOnlyIdleConnections(server: Server): { settle: () => Promise<void> } {
  const connections = new Map<Socket, Connection>()
  server.on('connection', (socket: Socket) => {
    connections.set(socket, { active: 0, readAtRest: 0 })
    socket.once('close', () => connections.delete(socket))
  })
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const connection = connections.get(request.socket)
    if (connection === undefined) return
    connection.active++
    response.once('close', () => {
      connection.active--
      connection.readAtRest = request.socket.bytesRead
    })
  })
  server.closeIdleConnections = function closeIdleConnections(): void {
    for (const [socket, connection] of connections) {
      if (connection.active === 0 && socket.bytesRead === connection.readAtRest) socket.destroy()
    }
  }
  return { settle: async () => settle(connections) }
}

/** What the server has taken in so far: connections accepted and bytes read. */
function intake(connections: Map<Socket, Connection>): string {
  let read = 0
  for (const socket of connections.keys()) read += socket.bytesRead
  return `${String(connections.size)}:${String(read)}`
}

/**
 * Lets the event loop take in what has already arrived before the listener closes: connections waiting in the
 * kernel's accept queue (closing the listener would reset them) and bytes waiting on accepted ones (unread, they
 * would look idle). At least three turns, until a turn brings nothing new, and 100 ms at most.
 */
async function settle(connections: Map<Socket, Connection>): Promise<void> {
  const deadline = Date.now() + 100
  let before = intake(connections)
  for (let turn = 0; Date.now() < deadline; turn++) {
    await new Promise(setImmediate)
    const after = intake(connections)
    if (turn >= 2 && after === before) return
    before = after
  }
}
