import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { request, type IncomingMessage } from 'node:http'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import t from 'tap'
import { listen } from './helpers/app.js'
import { send } from './helpers/http.js'
import { requirePart } from './helpers/require.js'

// Swagger UI's asset files as a client gets them over a socket. They are relayed from Swagger UI's own instance, which
// holds an answer whole; the server keeps each file's bytes once, so that many requests for its 1.4 MB bundle do not
// cost 1.4 MB each.

const STATIC = join(dirname(createRequire(import.meta.url).resolve('@fastify/swagger-ui')), 'static')
const BUNDLE = '/docs/static/swagger-ui-bundle.js'
const onDisk = readFileSync(join(STATIC, 'swagger-ui-bundle.js'))
const sha = (data: string | Buffer) => createHash('sha256').update(data).digest('hex')

t.test('an asset: its bytes, HEAD, a Range answered whole, If-None-Match', async (t) => {
  const { url } = await listen(t, { swaggerUi: true })
  const whole = await send(url, BUNDLE)
  t.equal(whole.status, 200)
  t.equal(sha(whole.text), sha(onDisk.toString('utf8')), 'the file as it is on disk')
  t.equal(whole.headers['content-length'], String(onDisk.length), 'its length')
  t.match(whole.headers['content-type'], /^application\/javascript/)
  t.ok(whole.headers.etag, 'an ETag')
  t.match(whole.headers['cache-control'], /max-age/, 'Swagger UI\'s caching headers')

  const again = await send(url, BUNDLE)
  t.same([again.status, sha(again.text)], [200, sha(whole.text)], 'the same bytes again')
  const head = await send(url, BUNDLE, { method: 'HEAD' })
  t.same([head.status, head.text, head.headers['content-length'], head.headers.etag],
    [200, '', String(onDisk.length), whole.headers.etag], 'HEAD: the headers, no body')

  const ranged = await send(url, BUNDLE, { headers: { range: 'bytes=0-9' } })
  t.same([ranged.status, ranged.text.length, ranged.headers['content-range'], ranged.headers['accept-ranges']],
    [200, whole.text.length, undefined, undefined], 'a Range is answered with the whole file, and none is offered')

  const unchanged = await send(url, BUNDLE, { headers: { 'if-none-match': String(whole.headers.etag) } })
  t.same([unchanged.status, unchanged.text, unchanged.headers.etag], [304, '', whole.headers.etag],
    'If-None-Match with its ETag: 304')
  const changed = await send(url, BUNDLE, { headers: { 'if-none-match': '"something-else"' } })
  t.same([changed.status, sha(changed.text)], [200, sha(whole.text)], 'with another ETag: the file')

  const css = await send(url, '/docs/static/swagger-ui.css?v=1')
  t.same([css.status, css.text], [200, readFileSync(join(STATIC, 'swagger-ui.css'), 'utf8')],
    'another asset is itself, a query string ignored')
  const missing = await send(url, '/docs/static/no-such-file.js')
  t.same([missing.status, missing.headers['content-type']], [404, 'application/problem+json; charset=utf-8'],
    'an asset it does not have is still a 404 problem')
})

/** The response of one request whose body is not read: it stays with the server, or in flight. */
async function unread(url: string, path: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, url), { agent: false }, (res) => {
      res.pause()
      resolve(res)
    })
    req.on('error', reject)
    req.end()
  })
}

/** Bytes this process has read through read(2) and its kin, from files and sockets alike (proc(5)). */
function bytesRead(): number {
  const rchar = /^rchar: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'))
  return Number(rchar?.[1])
}

t.test('many requests for the bundle at once: its file is read once, not once each', async (t) => {
  if (!requirePart(t, existsSync('/proc/self/io'), '/proc/self/io, to count the bytes read (Linux)')) return
  const { url } = await listen(t, { swaggerUi: true })
  t.equal((await send(url, '/docs/')).status, 200, 'Swagger UI is loaded')
  const REQUESTS = 40
  const before = bytesRead()
  const responses = await Promise.all(Array.from({ length: REQUESTS }, async () => unread(url, BUNDLE)))
  const read = bytesRead() - before
  for (const res of responses) res.destroy()
  t.ok(responses.every((res) => res.statusCode === 200), `${String(REQUESTS)} answered 200`)
  // Read once per request (as inject holds each answer whole), that is 40 times the file: each of those copies held in
  // memory until sent. Read once, it is the file and what the paused clients took in before pausing.
  const files = read / onDisk.length
  t.ok(files < 8, `${String(REQUESTS)} requests for a ${(onDisk.length / 2 ** 20).toFixed(1)} MB file: `
    + `${files.toFixed(1)} times its size read`)
})
