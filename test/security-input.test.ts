import { createServer } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import t from 'tap'
import { printable, UNSAFE_CHARACTERS } from '#src/lib/text.js'
import { describeDatabase } from '#src/plugins/database/url.js'
import { freshDatabase, type Dialect } from './fixtures/databases.js'
import { startTestProvider, type TestClientOptions } from './fixtures/oidc-provider.js'
import { build, listen } from './helpers/app.js'
import { Problems, READ_SCOPE, settingsFromSecrets, WRITE_SCOPE } from './helpers/auth.js'
import { clientHome, lines, runHere } from './helpers/client.js'
import { send } from './helpers/http.js'

// What a stranger can send, sent: it is refused cheaply, cannot make the server spend much, and leaks nothing.

const RESOURCES = '/api/resource/v1/'
const BOTH = `${READ_SCOPE} ${WRITE_SCOPE}`

t.test('a hostile body without a token is refused before it is read; with one, it costs little and says little',
  async (t) => {
    const provider = await startTestProvider(t)
    const { url } = await listen(t, { auth: await settingsFromSecrets(t, provider), swaggerUi: false })
    // 1 MiB of extra properties: ~110,000 validation errors if it were parsed and checked in full.
    const members = Array.from({ length: 110_000 }, (_, i) => `"k${String(i)}":1`).join(',')
    const hostile = `{"name":"x",${members}}`.slice(0, 1024 * 1024 - 1).replace(/,[^,]*$/, '}')
    const delay = monitorEventLoopDelay({ resolution: 10 })
    delay.enable()
    const started = performance.now()
    const unauthenticated = await send(url, RESOURCES, {
      method: 'POST', body: hostile, headers: { 'content-type': 'application/json' }, timeout: 10_000,
    })
    t.equal(unauthenticated.status, 401, 'no token: 401 before the body is parsed or validated')
    t.ok(unauthenticated.text.length < 2_000, `a short answer (${String(unauthenticated.text.length)} bytes)`)

    const token = await provider.jwt({ scope: BOTH })
    const tooLarge = await send(url, RESOURCES, {
      method: 'POST', token, body: hostile, headers: { 'content-type': 'application/json' }, timeout: 10_000,
    })
    t.equal(tooLarge.status, 413, 'with a token: a resource body over 8 KiB is refused unread')

    const manyMembers = `{"name":"x",${Array.from({ length: 800 }, (_, i) => `"k${String(i)}":1`).join(',')}}`
    const invalid = await send<{ errors: unknown[], detail: string }>(url, RESOURCES, {
      method: 'POST', token, body: manyMembers, headers: { 'content-type': 'application/json' },
    })
    t.equal(invalid.status, 400, 'under 8 KiB, 800 extra members: 400')
    t.ok((invalid.body?.errors.length ?? 99) <= 10, 'at most 10 fields listed')
    t.ok(invalid.text.length < 4_000, `a short answer (${String(invalid.text.length)} bytes)`)
    delay.disable()
    const elapsed = performance.now() - started
    t.ok(delay.max / 1e6 < 250, `the event loop was never held long (max delay ${(delay.max / 1e6).toFixed(0)} ms)`)
    t.ok(elapsed < 5_000, `all of it answered in ${elapsed.toFixed(0)} ms`)

    const some = `{"name":"x",${Array.from({ length: 30 }, (_, i) => `"k${String(i)}":1`).join(',')}}`
    const listed = await send<{ errors: unknown[], detail: string }>(url, RESOURCES, {
      method: 'POST', token, body: some, headers: { 'content-type': 'application/json' },
    })
    t.equal(listed.body?.errors.length, 10, '30 extra members: 10 listed')
    t.match(listed.body?.detail, /\(and 29 more\)$/, 'and every other one counted in the detail')
  })

for (const dialect of ['sqlite', 'postgres', 'mysql'] satisfies Dialect[]) {
  t.test(`${dialect}: integers in the path and the query are decimal digits, never Infinity or 1e309`, async (t) => {
    const database = await freshDatabase(t, dialect)
    if (database === undefined) return
    const provider = await startTestProvider(t)
    const app = await build(t, { database, auth: await settingsFromSecrets(t, provider) })
    const token = await provider.jwt({ scope: BOTH })
    const created = await send<{ id: number }>(app, RESOURCES, { method: 'POST', token, json: { name: 'one' } })
    t.equal(created.status, 201)
    const bad = [
      `${RESOURCES}?limit=Infinity`, `${RESOURCES}?limit=1e309`, `${RESOURCES}?after=Infinity`,
      `${RESOURCES}?limit=0x10`,
      `${RESOURCES}?limit=1e1`, `${RESOURCES}?limit=%201`, `${RESOURCES}?after=-Infinity`, `${RESOURCES}Infinity`,
      `${RESOURCES}1e309`, `${RESOURCES}0x1`, `${RESOURCES}1e0`, `${RESOURCES}%201`, `${RESOURCES}NaN`,
    ]
    for (const path of bad) {
      const answer = await send(app, path, { token })
      t.equal(answer.status, 400, `${path}: 400`)
      t.match(answer.body, { type: Problems.validation }, `${path}: a validation problem`)
    }
    const fine = await send<{ resources: unknown[] }>(app, `${RESOURCES}?limit=10&after=0`, { token })
    t.equal(fine.body?.resources.length, 1, 'plain digits still work')
    t.equal((await send(app, `${RESOURCES}${String(created.body?.id)}`, { token })).status, 200)
  })
}

t.test('names from tokens and bodies cannot carry terminal escapes or bidi overrides', async (t) => {
  const evil: TestClientOptions = {
    id: 'mallory', secret: 'mallory-secret', preferredUsername: `Mal\u001b]0;owned\u0007lory\u202e${'x'.repeat(3000)}`,
  }
  const provider = await startTestProvider(t, { clients: [evil] })
  const app = await build(t, { auth: await settingsFromSecrets(t, provider) })
  const token = await provider.jwt({ client: evil, scope: BOTH })
  const created = await send<{ owner: { name: string } }>(app, RESOURCES, {
    method: 'POST', token, json: { name: 'ok' },
  })
  t.equal(created.status, 201)
  const owner = created.body?.owner.name ?? ''
  t.notMatch(owner, new RegExp(`[${UNSAFE_CHARACTERS}]`, 'u'), 'the owner name is cleaned')
  t.ok(owner.startsWith(']0;ownedlory') || owner.startsWith('Mal]0;ownedlory'), owner.slice(0, 30))
  t.equal(owner.length, 255, 'and capped at 255 characters')
  for (const name of ['evil\u202e', 'a\u2066b', '\u001b[31mred', 'x\u200fy']) {
    const refused = await send(app, RESOURCES, { method: 'POST', token, json: { name } })
    t.equal(refused.status, 400, `${JSON.stringify(name)}: 400`)
  }
})

t.test('the client escapes control and bidi characters of what a server sends', async (t) => {
  const evil = 'Hi\u001b]0;owned\u0007 \u202eevil'
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ message: evil }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.close(() => { resolve() }) }))
  const url = `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`
  const result = await runHere(['greeting', 'v1', '--server', url], clientHome(t).env)
  t.equal(result.code, 0, result.stderr)
  t.notOk(['\u001b', '\u0007', '\u202e'].some((c) => result.stdout.includes(c)), 'nothing raw reaches the terminal')
  t.same(lines(result.stdout), ['Hi\\u{1b}]0;owned\\u{7} \\u{202e}evil'], 'shown escaped')
  t.equal(printable('a\u2066b\u0000'), 'a\\u{2066}b\\u{0}', 'isolates and NUL too')
})

t.test('a slow-loris connection is cut at the headers timeout, not 30 s later', async (t) => {
  const { url } = await listen(t, { headersTimeout: 1000, requestTimeout: 2000, swaggerUi: false })
  const { port } = new URL(url)
  const socket = connect(Number(port), '127.0.0.1')
  const started = Date.now()
  await new Promise<void>((resolve) => socket.once('connect', resolve))
  socket.write('GET /api/greeting/v1/ HTTP/1.1\r\nHost: x\r\n')
  const drip = setInterval(() => { socket.write('X-Drip: 1\r\n') }, 200)
  let received = ''
  socket.setEncoding('utf8').on('data', (chunk: string) => { received += chunk })
  await new Promise<void>((resolve) => socket.once('close', () => { resolve() }))
  clearInterval(drip)
  const after = Date.now() - started
  t.ok(after < 3_000, `closed after ${String(after)} ms (headers timeout 1 s, checked every second)`)
  t.match(received, /^HTTP\/1\.1 408 /, 'with a 408 problem')
})

t.test('a malformed request pipelined behind a slow one does not cut into its answer', async (t) => {
  const { url } = await listen(t, {
    swaggerUi: false,
    routes: (app) => app.get('/slow', async () => {
      await new Promise((resolve) => setTimeout(resolve, 300))
      return { slow: true }
    }),
  })
  const { port } = new URL(url)
  const socket = connect(Number(port), '127.0.0.1')
  await new Promise<void>((resolve) => socket.once('connect', resolve))
  let received = ''
  socket.setEncoding('utf8').on('data', (chunk: string) => { received += chunk })
  socket.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE \u0000\r\n\r\n')
  await new Promise<void>((resolve) => socket.once('close', () => { resolve() }))
  t.match(received, /^HTTP\/1\.1 200 OK\r\n/, 'the slow request is answered')
  t.match(received, /\{"slow":true\}$/, 'in full')
  t.equal(received.match(/HTTP\/1\.1 /g)?.length, 1, 'and no second status line is written into it')
})

t.test('a missing Swagger UI asset is a 404, not a 405', async (t) => {
  const app = await build(t, { swaggerUi: true })
  const answer = await send(app, '/docs/static/no-such-file.js')
  t.equal(answer.status, 404)
  t.match(answer.headers['content-type'], /^application\/problem\+json/)
})

t.test('a database URI is logged without its secrets', async (t) => {
  const url = 'postgres://api:hunter2@db.example:5432/mrmat?sslpassword=opensesame&sslmode=require&client_secret=x'
  const shown = describeDatabase({ dialect: 'postgres', url })
  t.notMatch(shown, /hunter2|opensesame|=x\b/, shown)
  t.match(shown, /sslmode=require/, 'what is not secret stays')
})
