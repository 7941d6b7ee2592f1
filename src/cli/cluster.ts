import cluster, { type Worker } from 'node:cluster'
import type { Logger } from 'pino'
import { codedError, EXIT_RUNTIME } from '../lib/errors.js'

/** The message the primary sends a worker to shut down gracefully. */
export const SHUTDOWN_MESSAGE = 'mrmat:shutdown'

/** A worker that dies this soon after its fork, or before it ever listened, failed to start. */
const START_WINDOW_MS = 5_000
/** This many start failures in a row and the primary gives up: the workers cannot start. */
const MAX_START_FAILURES = 3

export interface ClusterOptions {
  workers: number
  /** The workers' own --shutdown-timeout; the primary waits a little longer before killing them. */
  shutdownTimeout: number
  log: Logger
}

/** Why the cluster stopped, if not by a signal: the CLI exits 1 with the message. */
export const ClusterError = codedError('MRMAT_CLUSTER_FAILED', { exitCode: EXIT_RUNTIME })
type ClusterError = InstanceType<typeof ClusterError>

interface Tracked {
  forkedAt: number
  listening: boolean
}

/**
 * Runs the primary of a node:cluster: forks the workers (which share the listening socket), replaces
 * any that dies, and on SIGTERM/SIGINT asks each to shut down gracefully and waits for them. Resolves
 * once every worker has exited after a signal; rejects with ClusterError when workers keep failing to
 * start, or when a worker does not stop in time or stops with an error.
 */
export async function runPrimary(options: ClusterOptions): Promise<void> {
  const { log } = options
  const tracked = new Map<Worker, Tracked>()
  let startFailures = 0
  let stopping: { reason: string, at: number } | undefined
  let failure: ClusterError | undefined
  let killTimer: NodeJS.Timeout | undefined

  const fork = (): void => {
    const worker = cluster.fork()
    tracked.set(worker, { forkedAt: Date.now(), listening: false })
    log.info(
      { worker: worker.id, workerPid: worker.process.pid },
      `forked worker ${worker.id} (pid ${worker.process.pid ?? '?'})`,
    )
  }

  return new Promise<void>((resolve, reject) => {
    const finish = (): void => {
      clearTimeout(killTimer)
      process.off('SIGTERM', onSignal)
      process.off('SIGINT', onSignal)
      cluster.off('exit', onExit)
      cluster.off('listening', onListening)
      if (failure === undefined) {
        log.info('every worker has stopped')
        resolve()
      } else {
        reject(failure)
      }
    }

    const stopAll = (reason: string): void => {
      stopping = { reason, at: Date.now() }
      const workers = [...tracked.keys()]
      if (workers.length === 0) {
        finish()
        return
      }
      // A message rather than the signal itself: on Ctrl-C the workers already got SIGINT from the
      // terminal, and a second signal would make them give up their graceful shutdown.
      // A worker still starting has nothing in flight and no handler for the message yet: it is
      // simply terminated.
      for (const worker of workers) {
        if (tracked.get(worker)?.listening === true && worker.isConnected()) worker.send(SHUTDOWN_MESSAGE)
        else worker.process.kill('SIGTERM')
      }
      killTimer = setTimeout(() => {
        failure ??= new ClusterError(
          `workers still running ${options.shutdownTimeout + 2000} ms after shutdown began: killed`,
        )
        for (const worker of tracked.keys()) worker.process.kill('SIGKILL')
      }, options.shutdownTimeout + 2000)
      killTimer.unref()
    }

    function onSignal(signal: NodeJS.Signals): void {
      if (stopping !== undefined) {
        // `timeout`, some init systems and a signal to the process group deliver one stop twice.
        if (Date.now() - stopping.at < 1000) return
        log.warn({ signal }, 'second signal: killing the workers')
        failure ??= new ClusterError(`stopped by a second ${signal}`)
        for (const worker of tracked.keys()) worker.process.kill('SIGKILL')
        return
      }
      log.info({ signal }, 'shutting down: asking every worker to finish its requests')
      stopAll(signal)
    }

    function onListening(worker: Worker): void {
      const state = tracked.get(worker)
      if (state === undefined) return
      state.listening = true
      startFailures = 0
      log.info(
        { worker: worker.id, workerPid: worker.process.pid },
        `worker ${worker.id} (pid ${worker.process.pid ?? '?'}) is serving`,
      )
    }

    function onExit(worker: Worker, code: number | null, signal: string | null): void {
      const state = tracked.get(worker)
      tracked.delete(worker)
      if (state === undefined) return
      const how = signal === null ? `exit code ${code ?? '?'}` : `signal ${signal}`
      const fields = { worker: worker.id, workerPid: worker.process.pid, code, signal }
      const label = `worker ${worker.id} (pid ${worker.process.pid ?? '?'})`
      if (stopping !== undefined) {
        if (code !== 0 && state.listening) failure ??= new ClusterError(`${label} stopped with ${how}`)
        log.info(fields, `${label} stopped with ${how}`)
        if (tracked.size === 0) finish()
        return
      }
      const failedToStart = !state.listening || Date.now() - state.forkedAt < START_WINDOW_MS
      startFailures = failedToStart ? startFailures + 1 : 0
      if (startFailures >= MAX_START_FAILURES) {
        log.error(fields, `${label} died with ${how}; ${startFailures} workers in a row failed to start, giving up`)
        failure = new ClusterError(
          `the workers keep failing to start (${startFailures} in a row, the last with ${how}); see the log above`,
        )
        stopAll('workers failing to start')
        return
      }
      log.error(fields, `${label} died with ${how}; starting a replacement`)
      fork()
    }

    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)
    cluster.on('exit', onExit)
    cluster.on('listening', onListening)
    for (let i = 0; i < options.workers; i++) fork()
  })
}

/** In a worker: calls `shutdown` when the primary asks for a graceful shutdown. */
export function onPrimaryShutdown(shutdown: () => void): void {
  process.on('message', (message: unknown) => {
    if (message === SHUTDOWN_MESSAGE) shutdown()
  })
}
