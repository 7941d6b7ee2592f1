import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { Database } from './database.js'
import type {} from '../../lib/observability.js'

declare module 'fastify' {
  interface FastifyInstance {
    database: Database
  }
}

export interface DatabasePluginOptions {
  database: Database
  /** Apply pending migrations when the plugin loads. Off by default: the CLI migrates before serving. */
  migrate?: boolean
  /** Close the database when Fastify closes. On by default. */
  closeOnShutdown?: boolean
}

/** Exposes an open database as `fastify.database` and reports it to readiness. */
async function databasePlugin(fastify: FastifyInstance, options: DatabasePluginOptions): Promise<void> {
  const { database } = options
  // Before the API plugins prepare their statements, so that each statement is traced.
  if (fastify.hasDecorator('requestTracer')) fastify.requestTracer.traceDatabase(database)
  if (options.migrate === true) await database.migrate()
  fastify.decorate<Database>('database', database)
  if (fastify.hasDecorator('readiness')) fastify.readiness.add('database', () => database.ping())
  if (fastify.hasDecorator('metrics')) fastify.metrics.watchDatabase(database)
  if (options.closeOnShutdown !== false) fastify.addHook('onClose', async () => database.close())
}

export default fp(databasePlugin, { name: 'mrmat-database', fastify: '5.x' })
