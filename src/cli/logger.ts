import cluster from 'node:cluster'
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino'
import { BatchedDestination } from '../lib/log-destination.js'
import { registerLineWriter } from '../lib/access-log.js'
import { importExternal } from '../lib/import-external.js'
import { PACKAGE_NAME } from '../lib/package-info.js'
import type { ServerConfig } from './config.js'

/** Fields the pretty line shows in its own words, or leaves out as noise on a terminal. */
const SHOWN = ['pid', 'hostname', 'name', 'role', 'reqId', 'method', 'path', 'status', 'durationMs', 'remoteAddress']

/** One readable line an event: the access line as `GET /path 200 1.2 ms`, anything else as its message. */
function prettyMessage(log: Record<string, unknown>, messageKey: string): string {
  const id = typeof log.reqId === 'string' ? ` [${log.reqId}]` : ''
  if (typeof log.method === 'string' && typeof log.status === 'number') {
    return `${log.method} ${String(log.path)} ${String(log.status)} ${String(log.durationMs)} ms${id}`
  }
  return `${String(log[messageKey])}${id}`
}

/**
 * A pino logger of plain JSON lines (no formatters, mixins or redaction) to `destination`, with `bindings` on every
 * line, whose access lines are composed whole rather than handed to pino as objects (see registerLineWriter): the
 * same line, written the way pino writes it (level, time, then the bindings).
 */
export function jsonLogger(options: LoggerOptions, destination: DestinationStream,
  bindings: Record<string, unknown>): Logger {
  const { chindingsSym, timeSym } = pino.symbols
  // The access line's message is the same every time: turned into JSON once.
  let message = ''
  let messageJson = '""'
  registerLineWriter(destination, (logger, level, fields, msg) => {
    const own = logger as unknown as Record<symbol, string | (() => string)>
    const time = own[timeSym] as () => string
    const chindings = own[chindingsSym] as string
    if (msg !== message) {
      message = msg
      messageJson = JSON.stringify(msg)
    }
    destination.write(`{"level":${String(level)}${time()}${chindings},${fields},"msg":${messageJson}}\n`)
  })
  return pino({ timestamp: epochTime, ...options }, destination).child(bindings)
}

let lastMs = Number.NaN
let lastTime = ''

/**
 * pino's default timestamp (`,"time":` and the milliseconds since the epoch), its text made once a millisecond: the
 * lines of a busy millisecond share it. A time in milliseconds is beyond V8's small integers, and turning it into text
 * took V8's slow number-to-text path on every line.
 */
function epochTime(): string {
  const now = Date.now()
  if (now !== lastMs) {
    lastMs = now
    lastTime = `,"time":${String(now)}`
  }
  return lastTime
}

/**
 * The server's logger. JSON lines go through pino's asynchronous destination, batched a turn of the event loop at a
 * time: a request never waits for a write, and what is buffered is flushed on exit and on fatal errors. A terminal gets
 * pino-pretty's readable lines instead, loaded only then.
 */
export async function createLogger(config: ServerConfig): Promise<Logger> {
  // Every line carries pino's pid; the role says which process of a cluster wrote it.
  const role = config.workers === 1 ? 'server' : cluster.isPrimary ? 'primary' : 'worker'
  const options = { name: PACKAGE_NAME, level: config.logLevel }
  if (config.logFormat === 'json') return jsonLogger(options, new BatchedDestination(1), { role })
  const { default: pretty } = await importExternal<{ default: typeof import('pino-pretty') }>('pino-pretty')
  const stream = pretty({
    colorize: process.stdout.isTTY,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: SHOWN.join(','),
    messageFormat: prettyMessage,
    sync: true,
  })
  return pino(options, stream).child({ role })
}
