import t from 'tap'
import { heapLimitBytes } from '#src/plugins/load-shedding.js'
import { build } from './helpers/app.js'
import { send } from './helpers/http.js'
import { pollUntil } from './helpers/wait.js'

// @fastify/under-pressure in the real app: a route of the test's own blocks the event
// loop on purpose, the server then refuses work with 503 problem details and Retry-After, and recovers.

const SAMPLE_MS = 200
const BLOCK_MS = 800

/** Holds the event loop for `ms`, as a busy start or a slow handler does. */
function holdEventLoop(ms: number): void {
  const until = Date.now() + ms
  while (Date.now() < until) { /* the point is to hold the event loop */ }
}

t.test('a blocked event loop: 503 problems with Retry-After, readiness reports it, then all recovers', async (t) => {
  const app = await build(t, {
    database: 'none',
    swaggerUi: false,
    maxEventLoopDelay: 100,
    maxHeapUsed: 0,
    maxRss: 0,
    loadTuning: { sampleInterval: SAMPLE_MS, retryAfter: 3 },
    routes: (app) => app.get('/block', async () => {
      holdEventLoop(BLOCK_MS)
      return { blocked: BLOCK_MS }
    }),
  })
  t.equal((await send(app, '/api/greeting/v1')).status, 200, 'serving before')

  t.equal((await send(app, '/block', { timeout: 10_000 })).status, 200, 'the loop was blocked')
  const refused = await pollUntil(async () => {
    const answer = await send(app, '/api/greeting/v1')
    return answer.status === 503 && answer
  }, 3000, 'a 503 under pressure', 10)
  t.match(refused.headers['content-type'], /^application\/problem\+json/)
  t.equal(refused.headers['retry-after'], '3')
  t.match(refused.body, {
    type: 'about:blank',
    title: 'Service Unavailable',
    status: 503,
    detail: /^The server is overloaded \(event loop delay (\d+ ms|unmeasurable \(blocked throughout\)) is over 100 ms\); retry later$/,
    instance: '/api/greeting/v1',
  })
  const recovered = await pollUntil(async () => {
    const answer = await send(app, '/api/greeting/v1')
    return answer.status === 200 && answer
  }, 3000, 'a 200 once the loop is free')
  t.match(recovered.body, { message: String })

  t.equal((await send(app, '/block', { timeout: 10_000 })).status, 200, 'the loop was blocked again')
  const [notReady, live] = await pollUntil(async () => {
    const [readiness, liveness] = await Promise.all([
      send(app, '/healthz/readiness'), send(app, '/healthz/liveness'),
    ])
    return readiness.status === 503 && [readiness, liveness] as const
  }, 3000, 'readiness 503 under pressure', 10)
  t.match(notReady.body, { status: 503, detail: /^Not ready: load / }, 'readiness names the load')
  t.equal(live.status, 200, 'liveness still answers: a busy process is not a dead one')
  await pollUntil(async () => (await send(app, '/healthz/readiness')).status === 200, 3000, 'ready again')
})

t.test('a start that holds the event loop past a sample is not load: the first requests are served', async (t) => {
  // The routes are added, and the loop held, after load shedding is registered and before ready: as a slow start
  // (migrations, compiling) on a busy machine holds it. under-pressure's first sample then measures that hold, and
  // the delay counts again two samples (1 s here) after ready. Samples of their own, longer than the other tests':
  // the requests below fall within that second however slowly a busy CI machine runs them, and a delay over the limit
  // then would be the machine's own.
  const sampleMs = 500
  const app = await build(t, {
    database: 'none',
    swaggerUi: false,
    maxEventLoopDelay: 300,
    maxHeapUsed: 0,
    maxRss: 0,
    loadTuning: { sampleInterval: sampleMs },
    routes: () => { holdEventLoop(3 * sampleMs) },
  })
  // The held sample is taken, and judged, while the first requests come.
  const answers = []
  for (const wait of [0, 100, 100, 100]) {
    await new Promise((resolve) => setTimeout(resolve, wait))
    answers.push((await send(app, '/api/greeting/v1')).status, (await send(app, '/healthz/readiness')).status)
  }
  t.same(answers, Array<number>(answers.length).fill(200), 'greeting v1 and readiness answer 200 throughout')
})

t.test('without load limits nothing is refused, and 0 disables a limit', async (t) => {
  const app = await build(t, { database: 'none', swaggerUi: false, maxEventLoopDelay: 0, maxHeapUsed: 0, maxRss: 0 })
  const answer = await send(app, '/healthz/readiness')
  t.equal(answer.status, 200)
  t.same(answer.body, { status: 'OK', checks: [{ name: 'load', status: 'OK' }] })
})

t.test('a heap limit below the heap in use refuses at once', async (t) => {
  const app = await build(t, {
    database: 'none',
    swaggerUi: false,
    maxEventLoopDelay: 0,
    maxHeapUsed: 1024,
    maxRss: 0,
    loadTuning: { sampleInterval: 50 },
  })
  const refused = await pollUntil(async () => {
    const answer = await send(app, '/api/greeting/v2')
    return answer.status === 503 && answer
  }, 3000, 'a 503 over the heap limit')
  t.match(refused.body, { status: 503, detail: /heap used \d+ MiB is over 0 MiB/ })
  t.equal(refused.headers['retry-after'], '5', 'the default Retry-After')
})

t.test('--max-heap-used up to 1 is a ratio of the heap limit, above it bytes', async (t) => {
  t.equal(heapLimitBytes(0.5, 1000), 500)
  t.equal(heapLimitBytes(512 * 1024 * 1024, 1000), 512 * 1024 * 1024)
  t.equal(heapLimitBytes(0, 1000), 0, '0 stays off')
})
