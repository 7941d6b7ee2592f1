import type { FastifyInstance } from 'fastify'
import { buildApp, type AppOptions } from '#src/app.js'
import type { Database } from '#src/plugins/database/index.js'

interface Tap {
  teardown(fn: () => unknown): void
}

export interface RunningApp {
  app: FastifyInstance
  /** Base URL without a trailing slash, e.g. http://127.0.0.1:41234 */
  url: string
}

/**
 * The real app on the given open database (migrated while building), listening on 127.0.0.1 on a free
 * port. Closed in the test's teardown, which closes the database too: register the database's own
 * fixture before calling this, so that it is dropped only after the app has let go of it.
 */
export async function startApp(
  t: Tap,
  database: Database,
  options: Omit<AppOptions, 'database'> = {},
): Promise<RunningApp> {
  let app: FastifyInstance
  try {
    app = await buildApp({ migrate: true, swaggerUi: false, ...options, database })
  } catch (error) {
    await database.close()
    throw error
  }
  t.teardown(() => app.close())
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, url }
}
