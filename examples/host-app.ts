// The whole API as one plugin, mounted by a host app under a prefix of its own, beside its own routes.
import Fastify from 'fastify'
import { api, openDatabase, parseDatabaseUrl, resolveAuthSettings } from 'mrmat-ts-api-fastify'

const app = Fastify({ logger: true })
app.get('/', async () => ({ host: 'mine' }))
await app.register(api, {
  prefix: '/mrmat',
  database: await openDatabase(parseDatabaseUrl('mrmat.sqlite')),
  migrate: true,
  auth: resolveAuthSettings({
    issuer: process.env.ISSUER ?? 'https://idp.example/realms/mrmat',
    audience: 'mrmat-ts-api-fastify',
  }),
})
await app.listen({ port: Number(process.env.PORT ?? 3000) })
// GET /mrmat/api/greeting/v1/, /mrmat/api/resource/v1/, /mrmat/healthz/readiness, /mrmat/openapi.json, …
