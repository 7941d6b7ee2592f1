import fp from 'fastify-plugin'
import underPressure from '@fastify/under-pressure'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { getHeapStatistics } from 'node:v8'
import { HttpProblem } from '../lib/problem.js'
import { NOT_SHED } from '../lib/observability.js'

export interface LoadOptions {
  /** Mean event-loop delay over a sample, in milliseconds; 0 disables. */
  maxEventLoopDelay: number
  /** V8 heap in use: bytes, or up to 1 a ratio of V8's heap limit; 0 disables. */
  maxHeapUsed: number
  /** Resident set size, in bytes; 0 disables. */
  maxRss: number
  /** How often the process is measured, in milliseconds. */
  sampleInterval?: number
  /** Seconds a refused client is told to wait (Retry-After). */
  retryAfter?: number
}

export const DEFAULT_SAMPLE_INTERVAL = 500
export const DEFAULT_RETRY_AFTER = 5

/**
 * The probes stay answerable under load: a liveness probe failing would have the orchestrator restart a process that
 * is merely busy, and readiness reports load through its own `load` check. By suffix, so that a prefix is allowed.
 */
const PROBES = ['/healthz/liveness', '/healthz/readiness']

/** --max-heap-used: a ratio of V8's heap limit up to 1, else bytes. */
export function heapLimitBytes(value: number, heapSizeLimit = getHeapStatistics().heap_size_limit): number {
  return value > 0 && value <= 1 ? Math.floor(value * heapSizeLimit) : Math.floor(value)
}

interface Limits {
  maxEventLoopDelay: number
  maxHeapUsedBytes: number
  maxRssBytes: number
}

const MIB = 1024 * 1024

/** What is over its limit: the reason (as metrics count it) and a sentence for the client. */
interface Overload {
  reason: 'event_loop_delay' | 'heap_used' | 'rss'
  detail: string
}

/** What is over its limit; the event-loop delay only when `delayCounts` (see loadShedding). */
function describeOverload(fastify: FastifyInstance, options: Limits, delayCounts: boolean): Overload | undefined {
  const usage = fastify.memoryUsage()
  if (delayCounts && options.maxEventLoopDelay > 0 && usage.eventLoopDelay > options.maxEventLoopDelay) {
    // under-pressure reports Infinity when the loop was too busy to take a single measurement.
    const delay = Number.isFinite(usage.eventLoopDelay)
      ? `${Math.round(usage.eventLoopDelay)} ms`
      : 'unmeasurable (blocked throughout)'
    return { reason: 'event_loop_delay', detail: `event loop delay ${delay} is over ${options.maxEventLoopDelay} ms` }
  }
  if (options.maxHeapUsedBytes > 0 && usage.heapUsed > options.maxHeapUsedBytes) {
    const limit = Math.round(options.maxHeapUsedBytes / MIB)
    const detail = `heap used ${Math.round(usage.heapUsed / MIB)} MiB is over ${limit} MiB`
    return { reason: 'heap_used', detail }
  }
  if (options.maxRssBytes > 0 && usage.rssBytes > options.maxRssBytes) {
    return {
      reason: 'rss',
      detail: `resident set ${Math.round(usage.rssBytes / MIB)} MiB is over `
        + `${Math.round(options.maxRssBytes / MIB)} MiB`,
    }
  }
  return undefined
}

/**
 * Refuses requests with 503 problem details and Retry-After while the process is overloaded (event
 * loop lagging, heap or RSS over their limits), so that it sheds work instead of timing everyone out.
 * No healthCheck is given to under-pressure: a failing one would turn every route into 503, and the
 * database is readiness' business.
 */
async function loadShedding(fastify: FastifyInstance, options: LoadOptions): Promise<void> {
  const retryAfter = options.retryAfter ?? DEFAULT_RETRY_AFTER
  const metrics = fastify.hasDecorator('metrics') ? fastify.metrics : undefined
  const limits: Limits = {
    maxEventLoopDelay: options.maxEventLoopDelay,
    maxHeapUsedBytes: heapLimitBytes(options.maxHeapUsed),
    maxRssBytes: options.maxRss,
  }
  const sampleInterval = options.sampleInterval ?? DEFAULT_SAMPLE_INTERVAL
  // under-pressure measures (event-loop delay, heap, RSS) a sample at a time; given no limits, it adds no hook of its
  // own, whose look-up of the route's options on every request cost as much as the rest of this plugin. Whether the
  // process is over a limit is decided here once a sample (at the same interval: the decision is at most a sample
  // older than under-pressure's figures), and a request only reads that decision.
  await fastify.register(underPressure, { sampleInterval })
  // The start holds the event loop (compiling, migrating, listening), and under-pressure measures the loop's delay
  // from the moment it is registered: its samples until one whole interval after `ready` measure the start, not load.
  // Counted, they had a server just started on a busy machine refuse its first requests and report itself not ready
  // (CI: one of three replicas started at once answered readiness 503). The delay counts from two intervals after
  // ready, when the latest sample began after it; the heap and RSS, which a start does not distort, count at once.
  let delayCountsFrom = Number.POSITIVE_INFINITY
  fastify.addHook('onReady', function countDelayAfterStart(done) {
    delayCountsFrom = Date.now() + 2 * sampleInterval
    done()
  })
  const judgeNow = () => describeOverload(fastify, limits, Date.now() >= delayCountsFrom)
  let overload: Overload | undefined
  const judge = setInterval(() => { overload = judgeNow() }, sampleInterval).unref()
  fastify.addHook('onClose', (_instance, done) => {
    clearInterval(judge)
    done()
  })
  // Callback style: it runs on every request, and an async hook would cost a promise each time.
  fastify.addHook('onRequest', function shedUnderLoad(request: FastifyRequest, _reply, done) {
    if (overload === undefined) {
      done()
      return
    }
    const { url: route, config } = request.routeOptions
    if ((route !== undefined && PROBES.some((probe) => route.endsWith(probe)))
      || (config as unknown as Record<symbol, unknown> | undefined)?.[NOT_SHED] === true) {
      done()
      return
    }
    metrics?.shed(overload.reason)
    request.log.warn({ detail: overload.detail }, 'refusing a request under load')
    done(new HttpProblem(503, `The server is overloaded (${overload.detail}); retry later`, {
      headers: { 'retry-after': String(retryAfter) },
    }))
  })
  fastify.readiness.add('load', () => {
    const overload = judgeNow()
    if (overload !== undefined) throw new Error(overload.detail)
  })
}

export default fp(loadShedding, { name: 'mrmat-load', fastify: '5.x', dependencies: ['mrmat-readiness'] })
