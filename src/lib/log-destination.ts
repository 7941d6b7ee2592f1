import { pino } from 'pino'

/** What pino writes its lines to (a SonicBoom, here). */
interface Destination {
  write(chunk: string): boolean
  flush(callback?: (error?: Error) => void): void
  flushSync(): void
}

/**
 * pino's destination (sonic-boom) writes each line on its own, which costs a few microseconds a line: a tenth of a
 * request. This hands it the lines of one turn of the event loop at once, written synchronously: one write(2) a turn
 * however many requests it served. Synchronous, because an asynchronous write still in flight when the process
 * exits is lost (sonic-boom's flushSync cannot take it back), and with a reader slower than the server (a busy log
 * collector on the other end of a full pipe) that was most of the last lines: test/log-destination.test.ts. A slow
 * reader slows the server down instead, as pino's own default does. Nothing is lost on the way out: pino flushes
 * through flushSync on fatal errors, and so does the process's exit (SIGKILL aside).
 */
export class BatchedDestination implements Destination {
  readonly #target: Destination
  #pending: string[] = []
  #scheduled = false

  constructor(fd = 1) {
    this.#target = pino.destination({ dest: fd, sync: true })
    process.once('exit', () => { this.flushSync() })
  }

  write(chunk: string): boolean {
    this.#pending.push(chunk)
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(this.#drain)
    }
    return true
  }

  readonly #drain = (): void => {
    this.#scheduled = false
    if (this.#pending.length === 0) return
    const lines = this.#pending.join('')
    this.#pending = []
    this.#target.write(lines)
  }

  flush(callback?: (error?: Error) => void): void {
    this.#drain()
    this.#target.flush(callback)
  }

  flushSync(): void {
    this.#drain()
    this.#target.flushSync()
  }
}
