import { randomBytes } from 'node:crypto'
import { networkInterfaces } from 'node:os'
import t from 'tap'
import { startTestProvider } from '../fixtures/oidc-provider.js'
import { IMAGE, IMAGE_VERSION, builtImage, containerEngine, run, uniqueName } from '../helpers/container.js'
import { send, type SendOptions } from '../helpers/http.js'
import { freePorts, logLines } from '../helpers/process.js'
import { requirePart } from '../helpers/require.js'
import { pollUntil } from '../helpers/wait.js'

// compose.yaml as it is, brought up with podman-compose: nginx (deploy/nginx.conf) in front of the api (two workers)
// on PostgreSQL. The OpenID provider runs in this process on one of the host's own addresses, which the containers
// reach; the api is told about it through MRMAT_ISSUER and MRMAT_AUDIENCE, as a user would.

const UP_MS = 180_000
const STANDINS: Record<string, string> = { NGINX_IMAGE: 'localhost/nginx:standin',
  POSTGRES_IMAGE: 'localhost/postgres:15-standin' }

/** An address of this host that a container can reach (not loopback). */
function hostAddress(): string | undefined {
  return Object.values(networkInterfaces()).flat()
    .find((address) => address !== undefined && address.family === 'IPv4' && !address.internal)?.address
}

const image = await builtImage(t)
/** podman-compose, else docker-compose: the first that runs. */
async function composeTool(): Promise<string | undefined> {
  for (const name of ['podman-compose', 'docker-compose']) {
    if ((await run(name, ['version'])).code === 0) return name
  }
  return undefined
}

const compose = image === undefined ? undefined : await composeTool()
const address = hostAddress()
if (image !== undefined && requirePart(t, compose !== undefined, 'podman-compose or docker-compose')
  && requirePart(t, address !== undefined, 'an IPv4 address of this host that containers can reach')) {
  const tool = compose as string
  const engine = containerEngine() as string
  const provider = await startTestProvider(t, { host: address })
  const project = uniqueName('compose')
  const [port = 0] = await freePorts(1)
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    POSTGRES_PASSWORD: randomBytes(12).toString('hex'),
    MRMAT_IMAGE: IMAGE,
    MRMAT_HTTP_PORT: String(port),
    MRMAT_ISSUER: provider.issuer,
    MRMAT_AUDIENCE: provider.audience,
  }
  // The official images where they can be had, else the local stand-ins (no registry here).
  for (const [variable, standin] of Object.entries(STANDINS)) {
    if ((await run(engine, ['image', 'exists', standin])).code === 0) env[variable] = standin
  }
  const composeRun = async (args: string[]) =>
    run(tool, ['-p', project, '-f', 'compose.yaml', ...args], UP_MS, env)
  t.teardown(async () => {
    await composeRun(['down', '-v'])
    await run(engine, ['volume', 'rm', '-f', `${project}_postgres-data`])
    await run(engine, ['network', 'rm', '-f', `${project}_default`])
  })

  const base = `http://127.0.0.1:${String(port)}`
  // A request with a token may wait for the api's fetch of the provider's discovery or keys, which it bounds at 5 s and
  // then answers 503: the client waits longer than that, to see the api's answer rather than its own timeout.
  const TOKEN_MS = 15_000
  // Ready means the database answers. A worker whose first fetch of the provider's discovery failed answers a token
  // with 503 and Retry-After until a retry succeeds (while one is in flight, it waits for it). Clients retry; so does
  // this test.
  const withToken = async <T>(path: string, options: SendOptions, what: string) =>
    pollUntil(async () => {
      const answer = await send<T>(base, path, { ...options, timeout: TOKEN_MS })
      return answer.status !== 503 && answer
    }, UP_MS, `${what}: an answer other than 503`, 500)
  const up = async (what: string) => {
    const started = await composeRun(['up', '-d', '--no-build'])
    t.equal(started.code, 0, `${what}: up -d ${started.code === 0 ? '' : started.stdout + started.stderr}`)
    return pollUntil(async () => {
      const answer = await send(base, '/healthz/readiness').catch(() => undefined)
      return answer?.status === 200 ? answer : undefined
    }, UP_MS, `${what}: readiness through nginx`, 500)
  }

  t.test('up: the APIs answer through nginx, resources are written to PostgreSQL, and survive down + up', async (t) => {
    await up('first up')
    const openapi = await send<{ info: { version: string } }>(base, '/openapi.json')
    t.equal(openapi.body?.info.version, IMAGE_VERSION, 'the image built from this checkout')
    const greeting = await send(base, '/api/greeting/v1/')
    t.same([greeting.status, greeting.body], [200, { message: 'Hello World' }])

    const anonymous = await send(base, '/api/resource/v1/')
    t.equal(anonymous.status, 401, 'resources need a token')
    const token = await provider.jwt()
    const created = await withToken<{ id: number, name: string }>('/api/resource/v1/', {
      method: 'POST', token, json: { name: 'kept across down and up' },
    }, 'create')
    t.equal(created.status, 201, `created: ${created.text}`)
    const id = created.body?.id ?? 0
    t.equal(created.headers.location, `${base}/api/resource/v1/${String(id)}`,
      'Location names the host and port the client used (nginx is trusted as the proxy)')
    t.equal(created.headers['x-request-id']?.length, 32, 'nginx gave the request its id')

    const logs = await run(engine, ['logs', `${project}_api_1`])
    const lines = logLines(logs.stdout + logs.stderr)
    t.ok(lines.some((line) => line.role === 'primary' && /starting 2 workers/.test(String(line.msg))),
      'the api runs two workers')
    t.ok(lines.some((line) => line.msg === 'database migrations are applied'), 'migrated PostgreSQL')

    const down = await composeRun(['down'])
    t.equal(down.code, 0, 'down')
    const gone = await send(base, '/healthz/').then(() => 'answered', () => 'refused')
    t.equal(gone, 'refused', 'nothing listens after down')

    await up('up again')
    const read = await withToken<{ name: string }>(`/api/resource/v1/${String(id)}`, { token }, 'after the restart')
    t.same([read.status, read.body?.name], [200, 'kept across down and up'], 'the resource survived on the volume')
  })
}
