// The servers `npm run bench` measures, in a process of their own so that autocannon does not share
// their event loop: a bare Fastify route (the baseline) and the real app on SQLite with real tokens.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import { Type } from '@sinclair/typebox'
import { buildApp } from '#src/app.js'
import { resolveAuthSettings } from '#src/plugins/auth/settings.js'
import { openSqlite } from '#src/plugins/database/sqlite.js'
import { startTestProvider } from '../test/fixtures/oidc-provider.js'

const teardowns: (() => unknown)[] = []
const dir = mkdtempSync(join(tmpdir(), 'mrmat-bench-'))
teardowns.push(() => { rmSync(dir, { recursive: true, force: true }) })

const provider = await startTestProvider({ teardown: (fn) => teardowns.unshift(fn) })

const baseline = Fastify()
baseline.get('/', {
  schema: { response: { 200: Type.Object({ message: Type.String() }) } },
}, async () => ({ message: 'Hello World' }))
const baselineUrl = await baseline.listen({ host: '127.0.0.1', port: 0 })

const app = await buildApp({
  database: openSqlite(join(dir, 'bench.sqlite')),
  migrate: true,
  auth: resolveAuthSettings({ issuer: provider.issuer, audience: provider.audience }),
})
const appUrl = await app.listen({ host: '127.0.0.1', port: 0 })
await app.identityProvider?.start()

const token = await provider.jwt()
const created = await fetch(`${appUrl}/api/resource/v1/`, {
  method: 'POST',
  headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
  body: JSON.stringify({ name: 'bench' }),
})
const resource = await created.json() as { id: number }

process.stdout.write(`${JSON.stringify({ baselineUrl, appUrl, token, resourceId: resource.id })}\n`)
process.on('SIGTERM', () => {
  void (async () => {
    await Promise.all([baseline.close(), app.close()])
    for (const fn of teardowns) await fn()
    process.exit(0)
  })()
})
