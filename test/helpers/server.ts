import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { buildApp, type AppOptions } from '#src/app.js'
import { openSqlite } from '#src/plugins/database/sqlite.js'

interface Tap {
  testdir(): string
  teardown(fn: () => unknown): void
}

export interface RunningServer {
  app: FastifyInstance
  /** Base URL without a trailing slash, e.g. http://127.0.0.1:41234 */
  url: string
  /** The SQLite file behind the server. */
  databaseFile: string
}

/** The real app on a fresh SQLite file in a test folder, listening on a free port; closed after the test. */
export async function startServer(
  t: Tap,
  options: Omit<AppOptions, 'database'> = {},
  /** Adds routes of the test's own (to provoke errors, say) before the server starts. */
  extraRoutes?: (app: FastifyInstance) => void,
): Promise<RunningServer> {
  const databaseFile = join(t.testdir(), 'test.sqlite')
  const app = await buildApp({ ...options, database: openSqlite(databaseFile), migrate: true })
  t.teardown(() => app.close())
  extraRoutes?.(app)
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, url, databaseFile }
}
