import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Registry, type Metric, type MetricValueWithName,
} from 'prom-client'
import { NOT_SHED, type AuthObserver, type ServerMetrics } from '../lib/observability.js'
import type { Database } from './database/database.js'

export type { ServerMetrics } from '../lib/observability.js'

export interface MetricsOptions {
  /** Where the metrics go; a new registry by default. The CLI passes its own, to serve it on --metrics-port. */
  registry?: Registry
  /**
   * Serves the registry in the Prometheus text format at this path of this server, left out of the OpenAPI document;
   * false serves it nowhere (the caller does, on a port of its own). `/metrics` by default.
   */
  path?: string | false
  /** prom-client's process and event-loop metrics (CPU, memory, handles, GC, event-loop lag). On by default. */
  processMetrics?: boolean
}

/** The route label of a request no route matched (404, 405): one value, however many URLs strangers try. */
export const UNMATCHED_ROUTE = 'unmatched'

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])
const STATUS_CLASSES = ['', '1xx', '2xx', '3xx', '4xx', '5xx'] as const

/** From 1 ms to 10 s: a greeting takes well under a millisecond of the server's time, a slow database seconds. */
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** One series of the request histogram: its labels, and its counts per bucket (the last: above every bound). */
interface Series {
  labels: { method: string, route: string, status_class: string }
  buckets: Float64Array
  sum: number
  count: number
}

/**
 * The request histogram, in the shape prom-client's registry and cluster aggregator read (a `get()` answering the
 * `_bucket`, `_sum` and `_count` samples), but observed without allocating: prom-client's own Histogram builds a label
 * object and a hash string on every observation, even through a child bound to its labels. A request finds its series
 * once (see RouteSeries) and adds to numbers.
 */
class RequestHistogram {
  readonly name = 'http_request_duration_seconds'
  readonly help = 'Requests answered, by method, route template (unmatched: no route) and status class, and how long '
    + 'they took from arrival to the last byte handed to the socket'
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly #series: Series[] = []

  series(method: string, route: string, statusClass: string): Series {
    const made: Series = { labels: { method, route, status_class: statusClass },
      buckets: new Float64Array(DURATION_BUCKETS.length + 1), sum: 0, count: 0 }
    this.#series.push(made)
    return made
  }

  observe(series: Series, seconds: number): void {
    let bucket = 0
    while (bucket < DURATION_BUCKETS.length && seconds > (DURATION_BUCKETS[bucket] ?? Infinity)) bucket++
    series.buckets[bucket] = (series.buckets[bucket] ?? 0) + 1
    series.sum += seconds
    series.count++
  }

  get(): Promise<{ name: string, help: string, type: 'histogram', aggregator: 'sum',
    values: MetricValueWithName<string>[] }> {
    const values: MetricValueWithName<string>[] = []
    for (const { labels, buckets, sum, count } of this.#series) {
      let cumulative = 0
      DURATION_BUCKETS.forEach((bound, i) => {
        cumulative += buckets[i] ?? 0
        values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: bound }, value: cumulative })
      })
      values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: count })
      values.push({ metricName: `${this.name}_sum`, labels, value: sum })
      values.push({ metricName: `${this.name}_count`, labels, value: count })
    }
    return Promise.resolve({ name: this.name, help: this.help, type: 'histogram', aggregator: 'sum', values })
  }

  reset(): void {
    for (const series of this.#series) {
      series.buckets.fill(0)
      series.sum = 0
      series.count = 0
    }
  }
}

/** The request histogram's series of one route, by method and status class, made on first use. */
class RouteSeries {
  readonly #byMethod = new Map<string, (Series | undefined)[]>()

  constructor(readonly histogram: RequestHistogram, readonly route: string) {}

  observe(method: string, status: number, seconds: number): void {
    const known = METHODS.has(method) ? method : 'other'
    let bySeries = this.#byMethod.get(known)
    if (bySeries === undefined) {
      bySeries = []
      this.#byMethod.set(known, bySeries)
    }
    const index = status >= 100 && status < 600 ? Math.floor(status / 100) : 5
    let series = bySeries[index]
    if (series === undefined) {
      series = this.histogram.series(known, this.route, STATUS_CLASSES[index] ?? '5xx')
      bySeries[index] = series
    }
    this.histogram.observe(series, seconds)
  }
}

/** A counter's children by their label values, made once each. */
function childrenOf<L extends string>(counter: Counter<L>): (...values: string[]) => Counter.Internal {
  const made = new Map<string, Counter.Internal>()
  return (...values) => {
    const key = values.join('\u0000')
    let child = made.get(key)
    if (child === undefined) {
      child = counter.labels(...values)
      made.set(key, child)
    }
    return child
  }
}

function authObserver(registry: Registry): AuthObserver {
  const checks = childrenOf(new Counter({
    name: 'mrmat_auth_token_checks_total',
    help: 'Bearer-token checks by outcome (accepted, refused) and reason (accepted: cached, jwt, introspection; '
      + 'refused: missing, malformed, expired, unknown_key, invalid, insufficient_scope, provider_unavailable, …)',
    labelNames: ['outcome', 'reason'],
    registers: [registry],
  }))
  const cache = childrenOf(new Counter({
    name: 'mrmat_auth_token_cache_lookups_total',
    help: 'Look-ups in the cache of verified tokens, by result (hit, miss)',
    labelNames: ['result'],
    registers: [registry],
  }))
  const jwks = childrenOf(new Counter({
    name: 'mrmat_auth_jwks_fetches_total',
    help: 'Fetches of the identity provider\'s key set, by outcome (ok, error)',
    labelNames: ['outcome'],
    registers: [registry],
  }))
  const introspections = childrenOf(new Counter({
    name: 'mrmat_auth_introspections_total',
    help: 'RFC 7662 introspections of opaque tokens, by outcome (active, inactive, refused, error)',
    labelNames: ['outcome'],
    registers: [registry],
  }))
  return {
    checked: (outcome, reason) => { checks(outcome, reason).inc() },
    cacheLookup: (hit) => { cache(hit ? 'hit' : 'miss').inc() },
    jwksFetched: (ok) => { jwks(ok ? 'ok' : 'error').inc() },
    introspected: (outcome) => { introspections(outcome).inc() },
  }
}

/** The database's pool, errors and busy waits, read from its stats at each scrape: nothing is counted per query. */
function databaseMetrics(registry: Registry): (database: Database) => void {
  const watched: Database[] = []
  const stats = () => watched.map((database) => ({ dialect: database.dialect, stats: database.stats?.() }))
  new Gauge({
    name: 'mrmat_db_pool_connections',
    help: 'Connections of the PostgreSQL or MySQL pool, by state (open, idle)',
    labelNames: ['dialect', 'state'],
    registers: [registry],
    collect() {
      for (const { dialect, stats: s } of stats()) {
        if (s?.pool === undefined) continue
        this.labels(dialect, 'open').set(s.pool.size)
        this.labels(dialect, 'idle').set(s.pool.idle)
      }
    },
  })
  new Gauge({
    name: 'mrmat_db_pool_waiting_clients',
    help: 'Queries waiting for a connection of the PostgreSQL or MySQL pool',
    labelNames: ['dialect'],
    registers: [registry],
    collect() {
      for (const { dialect, stats: s } of stats()) if (s?.pool !== undefined) this.labels(dialect).set(s.pool.waiting)
    },
  })
  // Counters that follow a total kept by the database: each scrape adds what it grew by since the last.
  const following = (name: string, help: string, read: (s: NonNullable<ReturnType<NonNullable<Database['stats']>>>)
    => number | undefined): void => {
    const seen = new Map<Database, number>()
    new Counter({
      name, help, labelNames: ['dialect'], registers: [registry],
      collect() {
        for (const database of watched) {
          const s = database.stats?.()
          const total = s === undefined ? undefined : read(s)
          if (total === undefined) continue
          const grown = total - (seen.get(database) ?? 0)
          seen.set(database, total)
          this.labels(database.dialect).inc(grown > 0 ? grown : 0)
        }
      },
    })
  }
  following('mrmat_db_query_errors_total', 'Statements that failed (constraint violations included)',
    (s) => s.queryErrors)
  following('mrmat_db_sqlite_busy_wait_seconds_total', 'Seconds SQLite writes waited for the write lock',
    (s) => s.busy?.waitSeconds)
  following('mrmat_db_sqlite_busy_timeouts_total', 'SQLite writes refused after the busy timeout (SQLITE_BUSY)',
    (s) => s.busy?.timeouts)
  return (database) => {
    if (!watched.includes(database)) watched.push(database)
  }
}

/**
 * Prometheus metrics of the server: requests by method, route template (never the raw URL) and status class, with
 * their duration; token checks, key fetches and introspections; the database pool, its errors and SQLite's busy waits;
 * requests shed under load; process and event-loop metrics. Register it before the plugins that report (auth, load
 * shedding, database), which find it as `fastify.metrics`.
 */
async function metrics(fastify: FastifyInstance, options: MetricsOptions): Promise<void> {
  const registry = options.registry ?? new Registry()
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry })
  const histogram = new RequestHistogram()
  registry.registerMetric(histogram as unknown as Metric)
  const shed = childrenOf(new Counter({
    name: 'mrmat_load_shed_total',
    help: 'Requests refused with 503 because the process was overloaded, by reason (event_loop_delay, heap_used, rss)',
    labelNames: ['reason'],
    registers: [registry],
  }))
  const serverMetrics: ServerMetrics = {
    registry,
    auth: authObserver(registry),
    shed: (reason) => { shed(reason).inc() },
    watchDatabase: databaseMetrics(registry),
  }
  fastify.decorate('metrics', serverMetrics)

  // Each route gets its own onResponse hook that knows its template: no per-request look-up of the route's options.
  // Fastify copies a GET route's hooks into the HEAD route it adds; the copy labels by the request's own method.
  const ours = new WeakSet<object>()
  fastify.addHook('onRoute', (route) => {
    const existing = route.onResponse === undefined ? [] : [route.onResponse].flat()
    if (existing.some((hook) => ours.has(hook))) return
    const series = new RouteSeries(histogram, route.url)
    function observeRoute(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
      series.observe(request.method, reply.statusCode, reply.elapsedTime / 1000)
      done()
    }
    ours.add(observeRoute)
    route.onResponse = [...existing, observeRoute]
  })
  const unmatched = new RouteSeries(histogram, UNMATCHED_ROUTE)
  fastify.addHook('onResponse', function observeUnmatched(request, reply, done) {
    if (request.is404) unmatched.observe(request.method, reply.statusCode, reply.elapsedTime / 1000)
    done()
  })

  if (options.path !== false) {
    // Not refused under load: that is when the metrics are wanted.
    const config = { [NOT_SHED]: true } as Record<symbol, boolean>
    fastify.get(options.path ?? '/metrics', { schema: { hide: true }, config }, async (_request, reply) => {
      const text = await registry.metrics()
      return reply.type(registry.contentType).send(text)
    })
  }
}

/**
 * A registry for one process's metrics. In a cluster worker it answers the primary's requests for them (see
 * clusterMetrics).
 */
export function processRegistry(worker: boolean): Registry {
  const registry = new Registry()
  if (worker) {
    AggregatorRegistry.setRegistries([registry])
    // Constructing an aggregator installs the side that answers, in a worker.
    new AggregatorRegistry()
  }
  return registry
}

/** In a cluster's primary: every worker's metrics, added up (histograms and counters summed), in the text format. */
export function clusterMetrics(): () => Promise<{ contentType: string, text: string }> {
  const aggregator = new AggregatorRegistry()
  return async () => ({ contentType: aggregator.contentType, text: await aggregator.clusterMetrics() })
}

export default fp(metrics, { name: 'mrmat-metrics', fastify: '5.x' })
