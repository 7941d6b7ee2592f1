// The baseline of npm run bench: a bare Fastify route with a response schema and no logger, in a process of its own.
// It prints its URL and serves until killed.
import Fastify from 'fastify'

const app = Fastify()
const schema = {
  response: { 200: { type: 'object', properties: { message: { type: 'string' } }, additionalProperties: false } },
}
app.get('/', { schema }, async () => ({ message: 'Hello World' }))
process.stdout.write(`${await app.listen({ host: '127.0.0.1', port: 0 })}\n`)
