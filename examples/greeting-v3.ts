// One API plugin and what it depends on: problem details, then the bearer token check, then the API.
import Fastify from 'fastify'
import { bearerAuth, problemDetails, readClientSecrets, resolveAuthSettings } from 'mrmat-ts-api-fastify'
import greetingV3 from 'mrmat-ts-api-fastify/plugins/greeting/v3'

const app = Fastify({ logger: true })
await app.register(problemDetails)
await app.register(bearerAuth, {
  settings: resolveAuthSettings({ secrets: readClientSecrets('client_secrets.json'), audience: 'my-api' }),
})
await app.register(greetingV3, { prefix: '/hello' })
await app.listen({ port: Number(process.env.PORT ?? 3000) })
