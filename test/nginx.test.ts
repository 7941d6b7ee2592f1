import { Agent } from 'node:http'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import t from 'tap'
import { findNginx, startNginx } from './fixtures/nginx.js'
import { startTestProvider } from './fixtures/oidc-provider.js'
import { startCli } from './helpers/cli.js'
import { send, type Answer } from './helpers/http.js'
import { freePorts, logLines, type Child } from './helpers/process.js'
import { requirePart } from './helpers/require.js'
import { pollUntil } from './helpers/wait.js'

// Another loopback address than nginx's own 127.0.0.1: the server must see this one, not the proxy's.
const CLIENT_ADDRESS = '127.0.0.2'
const BURST = 300
const CONCURRENCY = 10
const LOG_WAIT_MS = 2_000

/** A backend: the server's CLI as a process. */
interface Backend {
  cli: Child
  url: string
}

/**
 * The remoteAddress of the server's access line of that request id. The line may reach
 * us a moment after the answer (another pipe), so it is waited for, briefly.
 */
async function remoteAddressOf(backends: Backend[], requestId: string): Promise<unknown> {
  const deadline = Date.now() + LOG_WAIT_MS
  for (;;) {
    for (const { cli } of backends) {
      const line = logLines(cli.stdout).find((entry) => entry.reqId === requestId && entry.msg === 'request')
      if (line !== undefined) return line.remoteAddress
    }
    if (Date.now() > deadline) return undefined
    await delay(20)
  }
}

const nginx = findNginx()

t.test('behind nginx with deploy/nginx.conf', async (t) => {
  if (!requirePart(t, nginx !== undefined, 'nginx')) return
  const provider = await startTestProvider(t)
  const dir = t.testdir({ one: {}, two: {}, nginx: {} })
  const [nginxPort = 0, ...backendPorts] = await freePorts(3)
  const backends = await Promise.all(['one', 'two'].map(async (name, i) => startCli(t, [
    '--host', '127.0.0.1', '--port', String(backendPorts[i]), '--trust-proxy', '127.0.0.1',
    '--instance-path', join(dir, name), '--issuer', provider.issuer, '--audience', provider.audience,
  ], { cwd: dir })))
  const proxy = await startNginx(t, nginx ?? 'nginx', {
    port: nginxPort,
    backends: backends.map(({ url }) => new URL(url).host),
    dir: join(dir, 'nginx'),
  })
  const token = await provider.jwt()

  t.test('the APIs answer through it', async (t) => {
    const healthz = await send(proxy.url, '/healthz/')
    t.equal(healthz.status, 200)
    t.same(healthz.body, { status: 'OK' })
    const v2 = await send(proxy.url, '/api/greeting/v2/?name=Nginx')
    t.equal(v2.status, 200)
    t.same(v2.body, { message: 'Hello Nginx' })
    const v3 = await send(proxy.url, '/api/greeting/v3/', { token })
    t.equal(v3.status, 200)
    t.same(v3.body, { message: 'Hello test-client-display' })
  })

  t.test('the server sees the client\'s address, not the proxy\'s, and ignores a forged X-Forwarded-For', async (t) => {
    const plain = await send(proxy.url, '/healthz/', {
      localAddress: CLIENT_ADDRESS,
      headers: { 'x-request-id': 'nginx-client-address' },
    })
    t.equal(plain.status, 200)
    const forged = await send(proxy.url, '/healthz/', {
      localAddress: CLIENT_ADDRESS,
      headers: { 'x-request-id': 'nginx-forged-address', 'x-forwarded-for': '203.0.113.7' },
    })
    t.equal(forged.status, 200)
    t.equal(await remoteAddressOf(backends, 'nginx-client-address'), CLIENT_ADDRESS, 'request.ip is the client\'s')
    t.equal(await remoteAddressOf(backends, 'nginx-forged-address'), CLIENT_ADDRESS,
      'not the address the client claimed')
  })

  t.test('the request id: the client\'s, else nginx\'s, on the answer and in both logs', async (t) => {
    const given = await send(proxy.url, '/healthz/', { headers: { 'x-request-id': 'nginx-given-id' } })
    t.equal(given.headers['x-request-id'], 'nginx-given-id')
    const generated = await send(proxy.url, '/healthz/')
    const id = generated.headers['x-request-id']
    // nginx's $request_id is 32 hex digits; the server's own would be a UUID.
    t.match(id, /^[0-9a-f]{32}$/, 'nginx made it')
    t.match(proxy.accessLog(), `request_id=${String(id)} `, 'nginx logged it')
    t.not(await remoteAddressOf(backends, String(id)), undefined, 'the server logged it as reqId')
  })

  t.test('Location and links carry nginx\'s host and port, not the backend\'s', async (t) => {
    const created = await send(proxy.url, '/api/resource/v1/', {
      method: 'POST',
      token,
      json: { name: 'behind nginx' },
    })
    t.equal(created.status, 201)
    const { id } = created.body as { id: number }
    t.equal(created.headers.location, `${proxy.url}/api/resource/v1/${String(id)}`)
    // Each backend has a database of its own: with a few more resources, a page of one has a next page on either.
    for (const name of ['second', 'third', 'fourth']) {
      t.equal((await send(proxy.url, '/api/resource/v1/', { method: 'POST', token, json: { name } })).status, 201)
    }
    const page = await pollUntil(async () => {
      const answer = await send<{ next: string | null }>(proxy.url, '/api/resource/v1/?limit=1', { token })
      return answer.body?.next !== null && answer
    }, 5_000, 'a page with a next page')
    t.equal(page.status, 200)
    const next = String(page.body?.next)
    t.ok(next.startsWith(`${proxy.url}/api/resource/v1/?after=`), `next is on nginx: ${next}`)
    t.equal(page.headers.link, `<${next}>; rel="next"`, 'and so is the Link header')
  })

  t.test('a body over 1 MiB is refused by nginx with 413', async (t) => {
    const tooLarge = await send(proxy.url, '/api/resource/v1/', {
      method: 'POST',
      token,
      json: { name: 'x'.repeat(1024 * 1024) },
    })
    t.equal(tooLarge.status, 413)
  })

  t.test('a backend stopped during a burst of requests loses none of them', async (t) => {
    const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY })
    t.teardown(() => { agent.destroy() })
    const [stopping, staying] = backends as [Backend, Backend]
    const statuses: number[] = []
    let stopped: Promise<unknown> | undefined
    let next = 0
    const worker = async (): Promise<void> => {
      for (let i = next++; i < BURST; i = next++) {
        if (i === BURST / 3) stopped = stopping.cli.stop()
        const path = `/api/greeting/v2/?name=burst${String(i)}`
        const reply = await send(proxy.url, path, { agent }).catch((error: unknown) => {
          t.fail(`request ${String(i)}: ${String(error)}`)
          return { status: 0, headers: {}, text: '', body: undefined } satisfies Answer
        })
        statuses[i] = reply.status
      }
    }
    await Promise.all(Array.from({ length: CONCURRENCY }, worker))
    const failed = statuses.flatMap((status, i) => (status === 200 ? [] : [`#${String(i)}: ${String(status)}`]))
    t.same(failed, [], `all ${String(BURST)} requests answered 200`)
    t.equal(statuses.length, BURST)
    const result = await (stopped as Promise<{ code: number | null }>)
    t.equal(result.code, 0, 'the stopped backend exited 0')
    const served = (cli: Backend): number => logLines(cli.cli.stdout)
      // The access line has the path only (a query string can hold secrets); the burst is all the v2 requests.
      .filter((entry) => entry.msg === 'request' && entry.path === '/api/greeting/v2/').length
    t.ok(served(stopping) > 0, `the stopped backend served part of the burst (${String(served(stopping))})`)
    t.ok(served(staying) > 0, `the other served the rest (${String(served(staying))})`)
    t.equal((await send(proxy.url, '/healthz/')).status, 200, 'nginx still answers through the remaining backend')
    // How many went to a second backend after the first failed them: timing decides, so it is only shown.
    const retried = proxy.accessLog().split('\n').filter((line) => line.includes('name=burst') && /upstream=\S+, /.test(line))
    t.comment(`requests nginx passed on to the other backend: ${String(retried.length)}`)
  })
})
