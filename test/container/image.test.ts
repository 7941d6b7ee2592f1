import { readFileSync } from 'node:fs'
import t from 'tap'
import { IMAGE_VERSION, builtImage, isPodman, output, run, uniqueName } from '../helpers/container.js'
import { send } from '../helpers/http.js'
import { freePorts, logLines } from '../helpers/process.js'
import { pollUntil } from '../helpers/wait.js'

// The repository's Dockerfile, unmodified, built once (see helpers/container.ts) and run as a user would run it:
// read-only root filesystem, the instance volume and a tmpfs the only writable places.

const READY_MS = 60_000
/** The largest image accepted: the target on the slim base. */
const MAX_IMAGE_BYTES = 300 * 1000 * 1000
const migrationCount = (JSON.parse(readFileSync(new URL('../../drizzle/sqlite/meta/_journal.json', import.meta.url),
  'utf8')) as { entries: unknown[] }).entries.length

/** The SQLite database in the volume, read inside the container by the image's own node and better-sqlite3. */
const COUNT_MIGRATIONS = 'const D = require("/app/node_modules/better-sqlite3");'
  + ' const db = new D("/var/lib/mrmat/mrmat-ts-api-fastify.sqlite", { readonly: true, fileMustExist: true });'
  + ' console.log(JSON.stringify(db.prepare("SELECT count(*) AS n, max(created_at) AS last FROM __drizzle_migrations")'
  + '.get()))'

const image = await builtImage(t)
if (image !== undefined) {
  const { engine } = image
  interface Healthcheck { Test: string[] }
  const inspect = JSON.parse(await output(engine, ['image', 'inspect', image.image])) as [{
    Size: number
    // podman shows the HEALTHCHECK beside Config, docker inside it.
    Healthcheck?: Healthcheck
    Config: { User: string, Labels: Record<string, string>, Healthcheck?: Healthcheck }
  }]
  const [{ Size: size, Config: config, Healthcheck: podmanHealthcheck }] = inspect
  const healthcheck = podmanHealthcheck ?? config.Healthcheck
  t.comment(`image ${image.image}: ${(size / 1e6).toFixed(0)} MB, built in ${image.buildSeconds.toFixed(0)} s`)

  t.test('the image: small, labelled with the build\'s version, a non-root user, a HEALTHCHECK', async (t) => {
    t.ok(size <= MAX_IMAGE_BYTES, `${(size / 1e6).toFixed(0)} MB, at most ${String(MAX_IMAGE_BYTES / 1e6)} MB`)
    t.match(config.Labels, {
      'org.opencontainers.image.title': 'mrmat-ts-api-fastify',
      'org.opencontainers.image.version': IMAGE_VERSION,
      'org.opencontainers.image.licenses': 'MIT',
      'org.opencontainers.image.source': /^https:\/\//,
      'org.opencontainers.image.base.name': /debian:bookworm-slim$/,
    })
    t.equal(config.User, '1000:1000')
    t.match(healthcheck?.Test, ['CMD', 'node', '-e', /healthz\/liveness/])
    const tools = await run(engine, ['run', '--rm', '--entrypoint', 'sh', image.image, '-c',
      'command -v npm; command -v gcc; command -v python3; ls /app/node_modules/better-sqlite3/deps 2>/dev/null; true'])
    t.same([tools.code, tools.stdout], [0, ''], 'no npm, no compiler, no sources of the native module')
  })

  t.test('the image runs the Node.js of the Dockerfile\'s base (the current LTS), and cannot run dev', async (t) => {
    const base = /^ARG NODE_IMAGE=\S+:(\d+)-bookworm-slim$/m.exec(readFileSync(new URL('../../Dockerfile',
      import.meta.url), 'utf8'))?.[1]
    t.equal(base, '24', 'the Dockerfile builds on node:24')
    const node = await run(engine, ['run', '--rm', '--entrypoint', 'node', image.image, '--version'])
    t.match(node.stdout, new RegExp(`^v${base ?? '?'}\\.`), `node ${node.stdout.trim()} in the image`)
    const refused = await run(engine, ['run', '--rm', image.image, 'dev'])
    t.equal(refused.code, 2, 'dev refuses the image\'s MRMAT_HOST=0.0.0.0')
    t.match(refused.stderr, /dev refuses --host 0\.0\.0\.0/)
    const absent = await run(engine, ['run', '--rm', '-e', 'MRMAT_HOST=127.0.0.1', image.image, 'dev'])
    t.equal(absent.code, 1, 'on loopback, dev fails: the image has no oidc-provider')
    t.match(absent.stderr, /the development identity provider needs the package oidc-provider/)
  })

  t.test('--version prints the version the build was given', async (t) => {
    const version = await run(engine, ['run', '--rm', image.image, '--version'])
    t.same([version.code, version.stdout], [0, `${IMAGE_VERSION}\n`])
  })

  t.test('the entry point runs the command line from the code cache the build made for its node options', async (t) => {
    // Made by the build stage's node, run by the runtime stage's copy of it (src/cli/code-cache.ts).
    const version = await run(engine, ['run', '--rm', '-e', 'NODE_DEBUG=mrmat-code-cache', image.image, '--version'])
    t.equal(version.code, 0)
    t.match(version.stderr, /cache \S+ used/, 'the cache is used')
  })

  t.test('read-only, as uid 1000: serves, migrates into the volume, drains on SIGTERM, restarts', async (t) => {
    const name = uniqueName('image')
    const volume = uniqueName('data')
    const [port = 0] = await freePorts(1)
    t.teardown(async () => {
      await run(engine, ['rm', '-f', '-t', '0', name])
      await run(engine, ['volume', 'rm', '-f', volume])
    })
    // podman's --read-only adds tmpfs on /tmp, /var/tmp and /run unless told not to: only the one given here.
    await output(engine, ['run', '-d', '--name', name, '--read-only',
      ...(isPodman(engine) ? ['--read-only-tmpfs=false'] : []), '--tmpfs', '/tmp',
      '-v', `${volume}:/var/lib/mrmat`, '-p', `127.0.0.1:${String(port)}:8080`, image.image])
    const base = `http://127.0.0.1:${String(port)}`
    const ready = async () => pollUntil(async () => {
      const answer = await send(base, '/healthz/readiness').catch(() => undefined)
      return answer?.status === 200 ? answer : undefined
    }, READY_MS, `${name} ready`, 250)

    await ready()
    t.equal((await send(base, '/healthz/')).status, 200, '/healthz/')
    t.equal((await send(base, '/healthz/liveness')).status, 200, '/healthz/liveness')
    const openapi = await send<{ info: { version: string } }>(base, '/openapi.json')
    t.equal(openapi.body?.info.version, IMAGE_VERSION, 'OpenAPI info.version is the build\'s version')
    const greeting = await send(base, '/api/greeting/v1/')
    t.same([greeting.status, greeting.body], [200, { message: 'Hello World' }], 'an API answers')

    const uid = await run(engine, ['exec', name, 'node', '-e', 'console.log(process.getuid(), process.getgid())'])
    t.equal(uid.stdout, '1000 1000\n', 'the server runs as uid 1000')
    const write = await run(engine, ['exec', name, 'node', '-e', 'require("fs").writeFileSync("/app/written", "x")'])
    t.match([write.code, write.stderr], [1, /EROFS/], 'the root filesystem is read-only, the code included')
    const tmp = await run(engine, ['exec', name, 'node', '-e', 'require("fs").writeFileSync("/tmp/written", "x")'])
    t.equal(tmp.code, 0, 'the tmpfs is writable')

    const health = await run(engine, isPodman(engine) ? ['healthcheck', 'run', name]
      : ['exec', name, ...healthcheck?.Test.slice(1) ?? []])
    t.equal(health.code, 0, `the HEALTHCHECK passes ${health.stdout}${health.stderr}`)

    // The server is the container's first process, started by the entry point with its node options.
    const server = await output(engine, ['exec', name, 'node', '-e',
      'process.stdout.write(require("fs").readFileSync("/proc/1/cmdline", "utf8").split("\\0").join(" "))'])
    t.match(server, /^node --max-semi-space-size=8 --heap-growing-percent=50 \/app\/dist\/cli\/main\.js serve/,
      'the server runs with V8\'s young generation and the old one\'s growth bounded (README, Production: Memory)')
    const environment = await output(engine, ['exec', name, 'node', '-e',
      'process.stdout.write(require("fs").readFileSync("/proc/1/environ", "utf8").split("\\0").join("\\n"))'])
    t.match(environment, /^MALLOC_ARENA_MAX=2$/m, 'glibc\'s malloc has two arenas (README, Production: Memory)')

    const first = await output(engine, ['exec', name, 'node', '-e', COUNT_MIGRATIONS])
    const migrated = JSON.parse(first) as { n: number, last: number }
    t.equal(migrated.n, migrationCount, 'every migration was applied to the database in the volume')

    // The grace period of `stop` is the time until SIGKILL; the server's shutdown timeout is 10 s.
    const stopping = Date.now()
    await output(engine, ['stop', '-t', '30', name], 60_000)
    const stopSeconds = (Date.now() - stopping) / 1000
    const state = JSON.parse(await output(engine, ['inspect', '--format', '{{json .State}}', name])) as {
      ExitCode: number
    }
    t.equal(state.ExitCode, 0, 'SIGTERM: exit code 0')
    t.ok(stopSeconds < 15, `stopped in ${stopSeconds.toFixed(1)} s, well within the grace period`)
    const logs = await run(engine, ['logs', name])
    const messages = logLines(logs.stdout + logs.stderr).map((line) => line.msg)
    t.ok(messages.includes('database migrations are applied'), 'logged the migrations')
    t.ok(messages.includes('shutting down'), 'logged the shutdown')
    t.ok(messages.includes('stopped: the listener and the database are closed'), 'logged a clean stop')

    await output(engine, ['start', name])
    await ready()
    const again = JSON.parse(await output(engine, ['exec', name, 'node', '-e', COUNT_MIGRATIONS])) as typeof migrated
    t.same(again, migrated, 'after a restart: the same database, its migrations not applied again')
  })
}
