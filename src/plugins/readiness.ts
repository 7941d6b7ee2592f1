import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'

export type ReadinessCheck = () => Promise<void> | void

export interface CheckResult {
  name: string
  ok: boolean
  detail?: string
}

export interface Readiness {
  /** Adds a named check; it throws (or rejects) with a client-safe message when not ready. */
  add(name: string, check: ReadinessCheck): void
  run(): Promise<CheckResult[]>
}

declare module 'fastify' {
  interface FastifyInstance {
    readiness: Readiness
  }
}

export interface ReadinessOptions {
  /** How long one check may take before it counts as failed, in milliseconds. */
  checkTimeout?: number
}

function withTimeout(check: ReadinessCheck, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`no answer within ${ms} ms`)) }, ms)
  })
  return Promise.race([Promise.resolve().then(check), timeout]).finally(() => { clearTimeout(timer) })
}

/**
 * A registry of readiness checks (database, shutdown, load) that the healthz readiness route runs.
 * Shared machinery: the database plugin adds to it, the healthz plugin reads it.
 */
async function readiness(fastify: FastifyInstance, options: ReadinessOptions): Promise<void> {
  const checkTimeout = options.checkTimeout ?? 2000
  const checks = new Map<string, ReadinessCheck>()
  fastify.decorate('readiness', {
    add(name: string, check: ReadinessCheck) {
      checks.set(name, check)
    },
    async run() {
      return Promise.all(
        [...checks].map(async ([name, check]): Promise<CheckResult> => {
          try {
            await withTimeout(check, checkTimeout)
            return { name, ok: true }
          } catch (error) {
            fastify.log.warn({ check: name, err: error }, 'readiness check failed')
            return { name, ok: false, detail: (error as Error).message }
          }
        }),
      )
    },
  } satisfies Readiness)
}

export default fp(readiness, { name: 'mrmat-readiness', fastify: '5.x' })
