import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { parseCommandLine } from '#src/cli/command-line.js'
import { CLI_NAME, USAGE_HINT, cliProcess, runCli, stderrLines } from './helpers/cli.js'
import { clientHome, clientProcess, runClient } from './helpers/client.js'
import { signInDevice } from './helpers/device-sign-in.js'
import { send } from './helpers/http.js'
import { ROOT } from './helpers/build.js'
import { freePorts, logLines, type Child } from './helpers/process.js'
import { pollUntil } from './helpers/wait.js'

// `mrmat-ts-api-fastify dev`: the server and a development identity provider in one process, as the compiled package
// runs it. What it refuses, what it prints, the provider's endpoints, and its keys kept across a restart. The README's
// quick start through the installed package's bins is in package.test.ts.

const LISTENING = /"msg":"Server listening at (http:\/\/[^"]+)"/
const READ_SCOPE = 'mrmat-ts-api-fastify-resource-read'
const WRITE_SCOPE = 'mrmat-ts-api-fastify-resource-write'

t.test('dev refuses an address other than loopback, several workers, an identity provider of its own', async (t) => {
  const instance = ['--instance-path', t.testdir()]
  const cases: { args: string[], env?: Record<string, string>, error: RegExp }[] = [
    { args: ['--host', '0.0.0.0'], error: /^dev refuses --host 0\.0\.0\.0: its identity provider signs in anyone/ },
    { args: ['--host', '192.168.1.10'], error: /^dev refuses --host 192\.168\.1\.10: / },
    { args: [], env: { MRMAT_HOST: '::' }, error: /^dev refuses --host ::: / },
    { args: ['--host', '127.0.0.1', '--workers', '2'], error: /^dev refuses --workers 2: it serves from one process/ },
    { args: ['--issuer', 'https://idp.example', '--audience', 'api'], error: /^dev runs its own identity provider: leave out --issuer/ },
  ]
  for (const { args, env = {}, error } of cases) {
    await t.rejects(parseCommandLine(['dev', ...instance, ...args], env), { message: error, exitCode: 2 },
      [...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...args].join(' '))
  }
  for (const host of ['localhost', '127.0.0.1', '::1', '127.0.0.2']) {
    const invocation = await parseCommandLine(['dev', ...instance, '--host', host], {})
    t.match(invocation, { command: 'dev', config: { host, devIssuerPort: 8081 } }, `--host ${host} is loopback`)
  }
})

t.test('dev --host 0.0.0.0 as a process: one line, the usage hint, exit 2, nothing served', async (t) => {
  const result = await runCli(t, ['dev', '--host', '0.0.0.0', '--port', '0'], { cwd: t.testdir() })
  t.equal(result.code, 2)
  const [first, ...rest] = stderrLines(result)
  t.match(first, new RegExp(`^${CLI_NAME}: dev refuses --host 0\\.0\\.0\\.0: `))
  t.same(rest, [USAGE_HINT])
  t.equal(result.stdout, '', 'no log line: nothing started')
})

t.test('the image never runs dev: the Dockerfile\'s command is serve', async (t) => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
  t.match(dockerfile, /^ENTRYPOINT \["node", (?:"--[\w-]+(?:=\w+)?", )*"\/app\/dist\/cli\/main\.js"\]$/m)
  t.match(dockerfile, /^CMD \["serve"\]$/m)
  t.notMatch(dockerfile.split('\n').filter((line) => /^(CMD|ENTRYPOINT)/.test(line)).join('\n'), /dev/)
  t.match(dockerfile, /npm prune --omit=dev --omit=optional/, 'and leaves oidc-provider (optional) out of the image')
})

interface DevServer {
  cli: Child
  url: string
  issuer: string
  /** What it printed on stderr once listening: the next steps. */
  nextSteps: string
}

async function startDev(t: Test, instancePath: string, ports: string[] = ['--port', '0', '--dev-issuer-port', '0'])
  : Promise<DevServer> {
  const cli = await cliProcess(t, ['dev', '--host', '127.0.0.1', ...ports, '--instance-path', instancePath],
    { cwd: instancePath })
  const [, url = ''] = await cli.waitForLine(LISTENING)
  // The next steps follow the listening line on stderr.
  const nextSteps = await pollUntil(() => (/curl .*\n/.test(cli.stderr) ? cli.stderr : undefined), 10_000,
    'the next steps on stderr')
  const issuer = /Development identity provider at (http:\/\/127\.0\.0\.1:\d+)/.exec(nextSteps)?.[1] ?? ''
  return { cli, url, issuer, nextSteps }
}

t.test('dev: a loud warning, the next steps, and a provider with discovery, JWKS, device flow, client credentials, '
  + 'refresh and introspection', async (t) => {
  const instance = t.testdir()
  const dev = await startDev(t, instance)
  const warning = logLines(dev.cli.stdout).find((line) => line.level === 40)
  t.match(warning?.msg, /^DEVELOPMENT MODE: an identity provider that signs in anyone as any name /)
  t.match(warning?.msg, /Never use the dev command in production/)
  const server = dev.url
  t.match(dev.nextSteps,
    `npx ${CLI_NAME}-client login --server ${server} --discovery-url ${dev.issuer} --client-id mrmat-cli`)
  t.match(dev.nextSteps, `npx ${CLI_NAME}-client resource create my-resource --server ${server}`)
  t.match(dev.nextSteps, `curl -H "Authorization: Bearer $(npx ${CLI_NAME} token --instance-path ${instance})" `
    + `${server}/api/greeting/v3/`)

  const discovery = await send<Record<string, unknown>>(dev.issuer, '/.well-known/openid-configuration')
  t.match(discovery.body, {
    issuer: dev.issuer,
    jwks_uri: `${dev.issuer}/jwks`,
    device_authorization_endpoint: `${dev.issuer}/device/auth`,
    introspection_endpoint: `${dev.issuer}/token/introspection`,
  })
  const grants = discovery.body?.grant_types_supported as string[]
  for (const grant of ['client_credentials', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code']) {
    t.ok(grants.includes(grant), `grant ${grant}`)
  }
  const jwks = await send<{ keys: { kid: string, d?: string }[] }>(dev.issuer, '/jwks')
  t.equal(jwks.body?.keys.length, 1, 'one signing key published')
  t.notOk(jwks.body?.keys[0]?.d, 'its public part only')

  // The token subcommand: the scripts client's token, and the API takes it.
  const token = await runCli(t, ['token', '--instance-path', instance], { cwd: instance })
  t.equal(token.code, 0, token.stderr)
  const access = token.stdout.trim()
  t.match(access, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'a JWT on stdout, alone')
  const greeting = await send(dev.url, '/api/greeting/v3/', { token: access })
  t.same([greeting.status, greeting.body], [200, { message: 'Hello mrmat-script' }], 'greeting v3 with it')
  const created = await send<{ id: number }>(dev.url, '/api/resource/v1/', {
    method: 'POST', token: access, json: { name: 'from curl' },
  })
  t.equal(created.status, 201, 'it has the write scope')

  // The client CLI's device flow against it, signed in on the plain sign-in page; then a refresh and introspection.
  const home = clientHome(t)
  const login = await cliLogin(t, home.env, dev, 'alice')
  t.equal(login.code, 0, login.stderr)
  t.match(login.stdout, `Logged in to ${dev.url} as alice.`)
  const cache = JSON.parse(readFileSync(cacheFileOf(home.env.XDG_CACHE_HOME), 'utf8')) as {
    access_token: string, refresh_token: string, scope: string,
  }
  t.match(cache.scope, new RegExp(`${READ_SCOPE}.*${WRITE_SCOPE}|${WRITE_SCOPE}.*${READ_SCOPE}`))
  const refreshed = await fetch(`${dev.issuer}/token`, {
    method: 'POST',
    body: new URLSearchParams({
      grant_type: 'refresh_token', refresh_token: cache.refresh_token, client_id: 'mrmat-cli',
    }),
  })
  t.equal(refreshed.status, 200, 'the refresh token is refreshed')
  const renewed = await refreshed.json() as { access_token: string, refresh_token: string }
  t.equal((await send(dev.url, '/api/greeting/v3/', { token: renewed.access_token })).status, 200)
  const connection = JSON.parse(readFileSync(join(instance, 'dev-identity-provider', 'connection.json'), 'utf8')) as {
    client_id: string, client_secret: string,
  }
  const introspected = await fetch(`${dev.issuer}/token/introspection`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${connection.client_id}:${connection.client_secret}`).toString('base64')}`,
    },
    body: new URLSearchParams({ token: renewed.refresh_token }),
  })
  t.match(await introspected.json(), { active: true, sub: 'alice', client_id: 'mrmat-cli' }, 'introspection')
})

function cacheFileOf(cacheHome = ''): string {
  const folder = join(cacheHome, 'mrmat-ts-api-fastify')
  const [file = ''] = readdirSync(folder).filter((name) => /^tokens-.*\.json$/.test(name))
  return join(folder, file)
}

async function cliLogin(t: Test, env: Record<string, string>, dev: DevServer, name: string) {
  const login = await clientProcess(t, ['login', '--server', dev.url, '--discovery-url', dev.issuer,
    '--client-id', 'mrmat-cli', '--poll-interval', '0.2'], env)
  const [, uri = '', code = ''] = await login.waitForLine(/open (\S+) and enter the code (\S+)$/)
  await signInDevice(uri, code, name)
  return login.waitForExit(30_000)
}

t.test('dev keeps its key, secrets and grants in the instance path: tokens and logins survive a restart', async (t) => {
  const instance = t.testdir()
  const [port = 0, issuerPort = 0] = await freePorts(2)
  const ports = ['--port', String(port), '--dev-issuer-port', String(issuerPort)]
  const first = await startDev(t, instance, ports)
  const home = clientHome(t)
  t.equal((await cliLogin(t, home.env, first, 'bob')).code, 0, 'logged in')
  const token = (await runCli(t, ['token', '--instance-path', instance], { cwd: instance })).stdout.trim()
  const folder = join(instance, 'dev-identity-provider')
  t.equal(statSync(folder).mode & 0o777, 0o700, 'the folder is the owner\'s alone')
  for (const file of ['secrets.json', 'store.json', 'connection.json']) {
    t.equal(statSync(join(folder, file)).mode & 0o777, 0o600, `${file} is mode 0600`)
  }
  const stopped = await first.cli.stop()
  t.equal(stopped.code, 0, 'stops on SIGTERM, provider and all')

  const second = await startDev(t, instance, ports)
  t.equal(second.issuer, first.issuer, 'the same issuer')
  t.same((await send(second.url, '/api/greeting/v3/', { token })).body, { message: 'Hello mrmat-script' },
    'a token of before the restart is still good')
  const created = await runClient(t, ['resource', 'create', 'after-restart', '--server', second.url], home.env)
  t.same([created.code, created.stderr], [0, ''], 'the client\'s login too')
  t.match(created.stdout, /^Created resource \d+: after-restart$/m)
})

t.test('token without a dev that ever ran: one line saying what to do, exit 1', async (t) => {
  const instance = t.testdir()
  const result = await runCli(t, ['token', '--instance-path', instance], { cwd: instance })
  t.equal(result.code, 1)
  t.match(stderrLines(result), [new RegExp(`^${CLI_NAME}: no development identity provider has run with `
    + `--instance-path ${instance} .*: start '${CLI_NAME} dev' first$`)])
})
