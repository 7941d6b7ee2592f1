// Two API plugins at prefixes of the host's choosing, on a SQLite file, without authentication.
import Fastify from 'fastify'
import { bearerAuth, databasePlugin, openDatabase, parseDatabaseUrl, problemDetails } from 'mrmat-ts-api-fastify'
import greetingV2 from 'mrmat-ts-api-fastify/plugins/greeting/v2'
import resourceV1 from 'mrmat-ts-api-fastify/plugins/resource/v1'

const app = Fastify({ logger: true })
await app.register(problemDetails)
await app.register(bearerAuth, { settings: undefined })
await app.register(databasePlugin, { database: await openDatabase(parseDatabaseUrl('app.sqlite')), migrate: true })
await app.register(greetingV2, { prefix: '/hello' })
await app.register(resourceV1, { prefix: '/things' })
await app.listen({ port: Number(process.env.PORT ?? 3000) })
