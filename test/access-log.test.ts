import { connect } from 'node:net'
import { pino, type DestinationStream } from 'pino'
import t from 'tap'
import { jsonLogger } from '#src/cli/logger.js'
import { durationText } from '#src/lib/access-log.js'
import { listen } from './helpers/app.js'

// The CLI's JSON logger composes the access line itself (src/lib/access-log.ts); it must write exactly the line pino
// writes for the same request, whatever the path holds.

/** A destination that keeps the raw lines written to it. */
function capture(): DestinationStream & { lines: string[] } {
  const lines: string[] = []
  return { lines, write: (chunk: string) => { lines.push(...chunk.split('\n').filter((line) => line !== '')) } }
}

/** Sends a raw request line (bytes as given, not encoded by a client library) and resolves once answered. */
async function raw(url: string, path: Buffer, headers = ''): Promise<string> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    let answer = ''
    socket.on('data', (chunk) => { answer += chunk.toString('latin1') })
    socket.on('end', () => { resolve(answer) })
    socket.on('error', reject)
    socket.write(Buffer.concat([Buffer.from('GET '), path,
      Buffer.from(` HTTP/1.1\r\nhost: test\r\nconnection: close\r\n${headers}\r\n`)]))
  })
}

const PATHS = [
  Buffer.from('/api/greeting/v1/'),
  Buffer.from('/api/greeting/v2/?name=secret'),
  Buffer.from('/api/greeting/v1/"quoted"'),
  Buffer.from('/api/greeting/v1/back\\slash'),
  // Node's parser refuses control characters and bytes above 0x7e in the target: these are the rest of what it takes.
  Buffer.from('/api/greeting/v1/{a}|^`~\'<>'),
  Buffer.from('/nowhere/%22%00'),
]

t.test('the composed access line is the line pino writes', async (t) => {
  const options = { name: 'access-log-test', level: 'info' as const }
  const composed = capture()
  const viaPino = capture()
  const fast = await listen(t, { database: 'none', loggerInstance: jsonLogger(options, composed, { role: 'server' }) })
  const slow = await listen(t, { database: 'none', loggerInstance: pino(options, viaPino).child({ role: 'server' }) })
  for (const path of PATHS) {
    await raw(fast.url, path, 'x-request-id: same-id\r\n')
    await raw(slow.url, path, 'x-request-id: same-id\r\n')
  }
  const access = (lines: string[]): string[] => lines.filter((line) => line.includes('"msg":"request"'))
    // Time and duration differ between two requests; every other byte must not.
    .map((line) => line.replace(/"time":\d+/, '"time":0').replace(/"durationMs":[\d.e-]+/, '"durationMs":0'))
  const fastLines = access(composed.lines)
  t.equal(fastLines.length, PATHS.length, 'one access line a request')
  t.same(fastLines, access(viaPino.lines), 'byte for byte the line pino writes')
  const parsed = fastLines.map((line) => JSON.parse(line) as Record<string, unknown>)
  t.equal(parsed[1]?.path, '/api/greeting/v2/', 'the query string is not logged')
  t.equal(parsed[2]?.path, '/api/greeting/v1/"quoted"', 'a quote in the path is escaped')
  t.equal(parsed[3]?.path, '/api/greeting/v1/back\\slash', 'a backslash in the path is escaped')
  t.match(parsed[0], {
    level: 30, role: 'server', reqId: 'same-id', method: 'GET', status: 200, remoteAddress: '127.0.0.1',
  })
})

t.test('the access line\'s duration is the text JSON gives the duration rounded to hundredths', async (t) => {
  // What pino would write for the number: String() of it, as JSON.stringify writes a finite number.
  const expected = (ms: number): string => String(Math.round(ms * 100) / 100)
  const wrong: string[] = []
  const check = (ms: number): void => {
    if (durationText(ms) !== expected(ms)) wrong.push(`${String(ms)}: ${durationText(ms)} for ${expected(ms)}`)
  }
  // Every count of hundredths up to 20 s, on the hundredth and either side of where it rounds.
  for (let hundredths = 0; hundredths <= 2_000_000; hundredths++) {
    const ms = hundredths / 100
    check(ms)
    check(ms + 0.004999)
    check(ms + 0.005)
    check(ms - 0.005)
  }
  // Fastify's elapsedTime is performance.now()'s difference: a fraction with many digits.
  for (let i = 0; i < 100_000; i++) check(Math.random() * 10 ** (i % 8))
  // Beyond the whole-number fast path, and what is not a duration at all: String()'s text, as before.
  for (const ms of [1e7 - 0.001, 1e7, 2 ** 40, 1e21, 1e300, -0, -0.001, -0.006, -5, Number.NaN, Infinity, -Infinity]) {
    check(ms)
  }
  t.same(wrong.slice(0, 10), [], `${String(wrong.length)} durations written otherwise`)
  t.equal(durationText(0.004), '0')
  t.equal(durationText(0.05), '0.05')
  t.equal(durationText(1.5), '1.5')
  t.equal(durationText(12.34), '12.34')
  t.equal(durationText(7), '7')
})

t.test('a logger above info writes no access line', async (t) => {
  const composed = capture()
  const logger = jsonLogger({ name: 'access-log-test', level: 'warn' }, composed, { role: 'server' })
  const { url } = await listen(t, { database: 'none', loggerInstance: logger })
  await raw(url, Buffer.from('/api/greeting/v1/'))
  t.same(composed.lines, [], 'nothing written')
})

t.test('without the access line the logger is still every line\'s, and no response is timed', async (t) => {
  const written = capture()
  const logger = jsonLogger({ name: 'access-log-test', level: 'info' }, written, { role: 'server' })
  const finishListeners: number[] = []
  const { app, url } = await listen(t, {
    database: 'none',
    loggerInstance: logger,
    accessLog: false,
    routes: (app) => {
      app.get('/test/boom', async () => {
        throw new Error('internals')
      })
      // Fastify's timing of a response is a `finish` listener of its own beside Node's.
      app.addHook('onSend', (_request, reply, payload, done) => {
        finishListeners.push(reply.raw.listenerCount('finish'))
        done(null, payload)
      })
    },
  })
  app.log.info('from the server')
  t.match(await raw(url, Buffer.from('/test/boom'), 'x-request-id: boom-id\r\n'), /^HTTP\/1\.1 500 /)
  t.match(await raw(url, Buffer.from('/api/greeting/v1/')), /^HTTP\/1\.1 200 /)
  t.match(await raw(url, Buffer.from('/nowhere'), 'x-request-id: lost-id\r\n'), /^HTTP\/1\.1 404 /)
  const lines = written.lines.map((line) => JSON.parse(line) as Record<string, unknown>)
  t.ok(lines.some((line) => line.msg === 'from the server' && line.role === 'server'), 'the server\'s own line')
  t.ok(lines.some((line) => line.msg === 'request failed' && line.reqId === 'boom-id' && line.role === 'server'
    && (line.err as { message?: string } | undefined)?.message === 'internals'), 'the failed request\'s, with its id')
  t.notOk(lines.some((line) => line.msg === 'request'), 'no access line')
  t.same(finishListeners, [1, 1, 1], 'Node\'s listener alone, on the 500, the 200 and the 404')
})
