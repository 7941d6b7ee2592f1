/** Where the client writes: process.stdout and process.stderr, or a test's own. */
export interface Stream {
  write(text: string): unknown
  isTTY?: boolean
}

export interface Io {
  stdout: Stream
  stderr: Stream
  env: NodeJS.ProcessEnv
}

export interface OutputOptions {
  json: boolean
  quiet: boolean
  debug: boolean
}

export interface Spinner {
  /** Replaces the text shown (a terminal) or prints it as a line (otherwise). */
  update(text: string): void
  stop(): void
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']
const FRAME_MS = 80

/**
 * Results go to stdout, as text or as JSON (--json); notes, progress and errors to stderr, so that a pipe gets the
 * result alone. --quiet leaves out the notes and progress, --debug adds a line per HTTP exchange.
 */
export class Output {
  constructor(readonly io: Io, readonly options: OutputOptions) {}

  /** The command's result: `human` as text, or `data` as one line of JSON with --json. */
  result(human: string, data: unknown): void {
    this.io.stdout.write(this.options.json ? `${JSON.stringify(data)}\n` : `${human}\n`)
  }

  note(text: string): void {
    if (!this.options.quiet) this.io.stderr.write(`${text}\n`)
  }

  debug(text: string): void {
    if (this.options.debug) this.io.stderr.write(`debug: ${text}\n`)
  }

  /** An animated line on a terminal; elsewhere plain lines, which logs and pipes can hold. */
  spinner(text: string): Spinner {
    const stream = this.io.stderr
    if (this.options.quiet) return { update: () => undefined, stop: () => undefined }
    if (stream.isTTY !== true) {
      stream.write(`${text}\n`)
      return { update: (next) => { stream.write(`${next}\n`) }, stop: () => undefined }
    }
    let current = text
    let frame = 0
    const draw = () => {
      stream.write(`\r\x1b[2K${FRAMES[frame % FRAMES.length] ?? ''} ${current}`)
      frame++
    }
    draw()
    const timer = setInterval(draw, FRAME_MS)
    // The spinner must never keep the process alive on its own.
    timer.unref()
    let stopped = false
    return {
      update: (next) => {
        current = next
        draw()
      },
      stop: () => {
        if (stopped) return
        stopped = true
        clearInterval(timer)
        stream.write('\r\x1b[2K')
      },
    }
  }
}

/** Rows as aligned columns under a header. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? '').length)))
  const line = (cells: string[]) => cells
    .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
    .join('  ')
  return [line(header), ...rows.map(line)].join('\n')
}
