import cluster from 'node:cluster'
import { setTimeout as sleep } from 'node:timers/promises'
import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import { buildApp } from '../app.js'
import { codedError, EXIT_RUNTIME } from '../lib/errors.js'
import { tracingConfigured } from '../lib/observability.js'
import { describeDatabase, openDatabase, type Database } from '../plugins/database/index.js'
import { onPrimaryShutdown, runPrimary } from './cluster.js'
import type { ServerConfig } from './config.js'
import { createLogger } from './logger.js'

/** The server could not start: the port is taken, say. */
export const StartError = codedError('MRMAT_START_FAILED', { exitCode: EXIT_RUNTIME })

async function openMigrated(config: ServerConfig, log: Logger, migrate = true): Promise<Database> {
  log.info({ instancePath: config.instancePath, database: describeDatabase(config.database) }, 'opening the database')
  const pool = { poolSize: config.dbPoolSize }
  const database = await openDatabase(config.database, { postgres: pool, mysql: pool })
  if (!migrate) return database
  try {
    await database.migrate()
  } catch (error) {
    await database.close()
    throw error
  }
  log.info('database migrations are applied')
  return database
}

/** `migrate`: applies the pending migrations and exits. */
export async function migrateOnly(config: ServerConfig): Promise<void> {
  const database = await openMigrated(config, await createLogger(config))
  await database.close()
}

/**
 * How long the queued connections may take to be accepted at shutdown: under load one a turn of the event loop. Half
 * the shutdown timeout, so that their requests have the other half, and 5 s at most.
 */
function settleWithin(shutdownTimeout: number): number {
  return Math.min(5_000, shutdownTimeout / 2)
}

/** The metrics port's server, or a StartError naming the address it could not listen on. */
async function serveMetrics(config: ServerConfig, log: Logger, collect: () => Promise<{ contentType: string,
  text: string }>): Promise<FastifyInstance> {
  const { startMetricsServer } = await import('./metrics-server.js')
  const port = config.metricsPort ?? 0
  try {
    const server = await startMetricsServer({ host: config.metricsHost, port, log: log.child({ server: 'metrics' }),
      collect })
    const address = server.server.address()
    const bound = typeof address === 'object' && address !== null ? address.port : port
    log.info({ metricsPort: bound }, `metrics are served at http://${config.metricsHost}:${bound}/metrics`)
    return server
  } catch (error) {
    throw new StartError(`cannot listen on ${config.metricsHost}:${port} for metrics: ${(error as Error).message}`)
  }
}

/** What the dev command adds to serving: its logger, a word once listening, and its provider closed last. */
export interface ServeHooks {
  log?: Logger
  /** Called once the server listens, with the port it got. */
  onListening?: (port: number) => void
  /** Called at a graceful shutdown, after the server and the database have closed. */
  onClose?: () => Promise<void>
}

/** `serve`: one process serving, or the primary of --workers N. */
export async function serve(config: ServerConfig, hooks: ServeHooks = {}): Promise<void> {
  if (config.workers > 1 && cluster.isPrimary) {
    await servePrimary(config)
    return
  }
  const log = hooks.log ?? await createLogger(config)
  // Before anything is opened, so that the database's statements are traced from the first.
  const tracing = tracingConfigured(process.env) ? await (await import('./tracing.js')).startTracing(log) : undefined
  let registry: Registry | undefined
  if (config.metrics) {
    // In a worker, the primary asks for it and adds the workers' up.
    registry = (await import('../plugins/metrics.js')).processRegistry(cluster.isWorker)
  }
  // The primary of a cluster has migrated already: workers starting together must not race to.
  const database = await openMigrated(config, log, cluster.isPrimary)
  const app = await buildApp({
    ...config, loggerInstance: log, database, shutdownReadiness: true, tracing: tracing !== undefined,
    ...(registry === undefined ? {} : { metricsRegistry: registry, serveMetrics: config.metricsPort === undefined }),
  })
  if (config.auth === undefined) {
    log.warn('no authentication is configured: protected APIs will answer 401 (pass --oidc-secrets or --issuer)')
  } else {
    log.info(
      { issuer: config.auth.issuer, audience: config.auth.audience },
      'bearer tokens are verified against the identity provider',
    )
  }
  try {
    await app.listen({ host: config.host, port: config.port })
  } catch (error) {
    await app.close()
    throw new StartError(`cannot listen on ${config.host}:${config.port}: ${(error as Error).message}`)
  }
  let metricsServer: FastifyInstance | undefined
  if (registry !== undefined && config.metricsPort !== undefined && !cluster.isWorker) {
    const served = registry
    try {
      metricsServer = await serveMetrics(config, log,
        async () => ({ contentType: served.contentType, text: await served.metrics() }))
    } catch (error) {
      await app.close()
      throw error
    }
  } else if (registry !== undefined && config.metricsPort === undefined) {
    log.info('metrics are served at /metrics on the public port')
  }
  const address = app.server.address()
  hooks.onListening?.(address !== null && typeof address === 'object' ? address.port : config.port)
  // Installed only once serving: close-with-grace exits 0 on beforeExit, which would hide a failed start.
  // Past --shutdown-timeout it exits 1 with whatever is still in flight.
  const grace = closeWithGrace({ delay: config.shutdownTimeout, logger: log }, async ({ signal, err, manual }) => {
    const requestedBy = manual === true ? 'primary' : undefined
    if (err !== undefined) log.error({ err }, 'shutting down after an uncaught error')
    // Readiness fails from here on; the requests in flight finish.
    else log.info({ signal, requestedBy, delay: config.shutdownDelay }, 'shutting down')
    app.lifecycle.beginShutdown()
    // Still accepting while a load balancer probing readiness notices and stops sending.
    if (config.shutdownDelay > 0) await sleep(config.shutdownDelay)
    // Connections waiting to be accepted, and requests whose first bytes have arrived, are taken in first: closing
    // the listener would reset the ones, and the others would look idle.
    await app.settleConnections(settleWithin(config.shutdownTimeout))
    await app.close()
    await metricsServer?.close()
    await tracing?.shutdown()
    await hooks.onClose?.()
    log.info('stopped: the listener and the database are closed')
  })
  if (cluster.isWorker) {
    onPrimaryShutdown(() => {
      // Ignored when a signal has begun the shutdown already (Ctrl-C reaches every process of the group).
      if (!app.lifecycle.shuttingDown) grace.close()
    })
  }
}

async function servePrimary(config: ServerConfig): Promise<void> {
  const log = await createLogger(config)
  const database = await openMigrated(config, log)
  await database.close()
  log.info({ workers: config.workers }, `primary (pid ${process.pid}) starting ${config.workers} workers`)
  // Each worker accepts from the listening socket itself rather than from the primary's round-robin queue: at
  // shutdown a worker can then take in every connection queued in the kernel before it lets go of the socket, and
  // the socket stays open (the primary holds it) until the last worker has. Round robin drops (resets) the
  // connections still in its queue when the last worker stops listening, and nothing outside Node can reach it.
  cluster.schedulingPolicy = cluster.SCHED_NONE
  let metricsServer: FastifyInstance | undefined
  if (config.metrics) {
    // One scrape answers for the whole server: the primary asks every worker and adds their metrics up.
    const { clusterMetrics } = await import('../plugins/metrics.js')
    metricsServer = await serveMetrics(config, log, clusterMetrics())
  }
  try {
    await runPrimary({ workers: config.workers, shutdownTimeout: config.shutdownTimeout, log })
  } finally {
    await metricsServer?.close()
  }
}
