import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { buildApp, type AppOptions } from '#src/app.js'
import { openSqlite } from '#src/plugins/database/sqlite.js'
import { openTestDatabase, type TestDatabase } from '../fixtures/databases.js'
import { within } from './wait.js'

const DISCOVERY_MS = 10_000

export interface BuildOptions extends Omit<AppOptions, 'database'> {
  /**
   * The database behind the app: a fixture's (see fixtures/databases.ts), 'none' (resource v1 is then not mounted), or
   * by default a fresh in-memory SQLite database. It is migrated while the app loads.
   */
  database?: TestDatabase | 'none'
  /** Routes of the test's own (to provoke errors, say), added before the app is ready. */
  routes?: (app: FastifyInstance) => void
  /**
   * With `auth`, wait until the identity provider has been discovered, as it has on a server that has been up a moment;
   * on by default. Off, the first requests may find it not reached yet (503).
   */
  discovered?: boolean
  /** Connections in a PostgreSQL or MySQL pool, as --db-pool-size sets them; 10 unless told. */
  poolSize?: number
}

/**
 * The real app, ready for `inject` (see send() in http.ts), closed in the test's teardown; the database goes with it.
 * Register a database fixture before calling this, so that it is dropped only after the app has let go of it.
 */
export async function build(t: Test, options: BuildOptions = {}): Promise<FastifyInstance> {
  const { database, routes, discovered = true, poolSize, ...settings } = options
  const opened = database === 'none' ? undefined
    : database === undefined ? openSqlite(':memory:')
      : await openTestDatabase(database, poolSize)
  let app: FastifyInstance
  try {
    app = await buildApp({ migrate: true, ...settings, database: opened })
  } catch (error) {
    await opened?.close()
    throw error
  }
  t.teardown(() => app.close())
  routes?.(app)
  await app.ready()
  if (discovered) await within(app.identityProvider?.start() ?? Promise.resolve(), DISCOVERY_MS, 'discovery')
  return app
}

/** The app of build(), listening on a free port of 127.0.0.1: only where the socket is the point. */
export async function listen(t: Test, options: BuildOptions = {}): Promise<{ app: FastifyInstance, url: string }> {
  const app = await build(t, options)
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, url }
}

/** A stream to give the app's logger, and the lines it has written, parsed. */
export function captureLogs(): { stream: Writable, lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = []
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) {
        if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>)
      }
      done()
    },
  })
  return { stream, lines }
}
