import { writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { cacheFile } from '#src/client/token-cache.js'
import { DEV_VERSION } from '#src/lib/package-info.js'
import { listen } from './helpers/app.js'
import { CLIENT_NAME, USAGE_HINT, clientHome, lines, runClient, runHere, writeConfig } from './helpers/client.js'
import { freePorts } from './helpers/process.js'


// yargs prints --help and --version and ends the process itself: these two run as a process.
t.test('--help lists every command and option; --version prints the package version', async (t) => {
  const home = clientHome(t)
  const help = await runClient(t, ['--help'], home.env)
  t.equal(help.code, 0)
  t.equal(help.stderr, '')
  for (const command of ['login', 'logout', 'greeting [api-version]', 'resource', 'health']) {
    t.match(help.stdout, new RegExp(`^ +${CLIENT_NAME} ${command.replace(/[[\]]/g, '\\$&')} `, 'm'), `lists ${command}`)
  }
  const options = [
    '--config', '--server', '--discovery-url', '--client-id', '--client-secret', '--read-scope', '--write-scope',
    '--timeout', '-q, --quiet', '-d, --debug', '--json',
  ]
  for (const option of options) {
    t.match(help.stdout, new RegExp(`^ +${option} `, 'm'), `lists ${option}`)
  }
  t.match(help.stdout, /Exit codes: 0 success, 1 API error/)
  const versionRun = await runClient(t, ['--version'], home.env)
  t.same([versionRun.code, versionRun.stdout], [0, `${DEV_VERSION}\n`], 'a build without MRMAT_VERSION')
})

t.test('a bad flag is exit 2 with one line and the usage hint', async (t) => {
  const { code, stdout, stderr } = await runClient(t, ['health', '--bogus'], clientHome(t).env)
  t.equal(code, 2)
  t.equal(stdout, '')
  t.same(lines(stderr), [`${CLIENT_NAME}: Unknown argument: bogus`, USAGE_HINT])
})

t.test('a server where nothing listens is one clear line and exit 1', async (t) => {
  const [port = 0] = await freePorts(1)
  const { code, stdout, stderr } = await runHere(['health', '--server', `http://127.0.0.1:${String(port)}`], clientHome(t).env)
  t.equal(code, 1)
  t.equal(stdout, '')
  t.same(lines(stderr), [`${CLIENT_NAME}: cannot reach the server at http://127.0.0.1:${String(port)}: connection refused`])
})

t.test('greeting v1 and v2 and health need no login, in text and JSON', async (t) => {
  const { url } = await listen(t, { swaggerUi: false })
  const home = clientHome(t, { server: `${url}/` })
  const here = async (...args: string[]) => runHere(args, home.env)
  t.same(await here('greeting'), { code: 0, stdout: 'Hello World\n', stderr: '' }, 'v1 by default')
  t.same(await here('greeting', 'v1', '--json'), { code: 0, stdout: '{"message":"Hello World"}\n', stderr: '' })
  const encoded = await here('greeting', 'v2', '--name', 'Bob & Eve?')
  t.same(encoded.stdout, 'Hello Bob & Eve?\n', 'the name is sent encoded')
  t.same((await here('greeting', 'v2')).stdout, 'Hello World\n')
  t.same(await here('health'), { code: 0, stdout: 'OK\n', stderr: '' })
  t.same((await here('health', '--json')).stdout, '{"status":"OK"}\n')
  const tooLong = await here('greeting', 'v2', '--name', 'x'.repeat(300))
  t.equal(tooLong.code, 1)
  t.match(lines(tooLong.stderr), [
    /^mrmat-ts-api-fastify-client: the server says: 400 Validation failed: The query field \/name must NOT have more than 255 characters \(request id [\w-]+\)$/,
    '  query /name: must NOT have more than 255 characters',
  ], 'the problem detail and each field')
  const unconfigured = await here('greeting', 'v3')
  t.equal(unconfigured.code, 2, 'greeting v3 needs the provider configured')
  t.match(lines(unconfigured.stderr)[0], /no discovery URL is configured: set --discovery-url, MRMAT_CLIENT_DISCOVERY_URL or "discovery_url" in /)
})

t.test('a flag beats MRMAT_CLIENT_* beats the config file beats nothing', async (t) => {
  const [filePort, envPort, flagPort, otherPort] = (await freePorts(4)).map(String)
  const home = clientHome(t, { server: `http://127.0.0.1:${filePort ?? ''}` })
  const other = join(home.dir, 'other.json')
  writeConfig(other, { server: `http://127.0.0.1:${otherPort ?? ''}` })
  const serverUsed = async (args: string[], env: Record<string, string> = {}) => {
    const { code, stderr } = await runHere(['health', ...args], { ...home.env, ...env })
    t.equal(code, 1)
    return /at http:\/\/127\.0\.0\.1:(\d+)/.exec(stderr)?.[1]
  }
  t.equal(await serverUsed([]), filePort, 'the default config file under XDG_CONFIG_HOME')
  t.equal(await serverUsed([], { MRMAT_CLIENT_SERVER: `http://127.0.0.1:${envPort ?? ''}` }), envPort, 'MRMAT_CLIENT_SERVER over the file')
  t.equal(await serverUsed(['--server', `http://127.0.0.1:${flagPort ?? ''}`], { MRMAT_CLIENT_SERVER: `http://127.0.0.1:${envPort ?? ''}` }), flagPort, '--server over both')
  t.equal(await serverUsed(['--config', other]), otherPort, '--config names another file')
  t.equal(await serverUsed([], { MRMAT_CLIENT_CONFIG: other }), otherPort, 'so does MRMAT_CLIENT_CONFIG')
  writeConfig(join(home.env.HOME ?? '', '.config', 'mrmat-ts-api-fastify', 'client.json'), { server: `http://127.0.0.1:${otherPort ?? ''}` })
  const relative = await serverUsed([], { XDG_CONFIG_HOME: 'relative/path' })
  t.equal(relative, otherPort, 'a relative XDG_CONFIG_HOME is ignored for ~/.config')
})

t.test('bad settings and arguments are exit 2 with one line naming them', async (t) => {
  const home = clientHome(t)
  const [port = 0] = await freePorts(1)
  const server = `http://127.0.0.1:${String(port)}`
  const notJson = join(home.dir, 'not.json')
  const unknownKey = join(home.dir, 'unknown.json')
  const wrongType = join(home.dir, 'wrong.json')
  writeConfig(unknownKey, { server, serverr: 'typo' })
  writeConfig(wrongType, { server: 8080 })
  writeFileSync(notJson, '{ "server": ')
  const at = ['--server', server]
  const login = ['login', ...at, '--client-id', 'x', '--discovery-url', server]
  const notResource = (id: string): string => `a resource id is a whole number from 1 to 2147483647, not "${id}"`
  // The arguments, the message (all of it, when text), and variables.
  const cases: [string[], RegExp | string, Record<string, string>?][] = [
    [['health'], `no server is configured: set --server, MRMAT_CLIENT_SERVER or "server" in ${home.configFile}`],
    [['health', '--server', 'localhost:8080'], '--server must be an http or https URL: localhost:8080'],
    [['health', '--server', 'nope'], '--server is not a URL: "nope"'],
    [['health'], 'MRMAT_CLIENT_SERVER must be an http or https URL: ftp://x', { MRMAT_CLIENT_SERVER: 'ftp://x' }],
    [['health', '--server', 'http://u:p@host/'], '--server must not hold a user name or password'],
    [['health', '--server', 'http://host/?x=1'], '--server must not have a query or fragment: http://host/?x=1'],
    [['health', '--config', join(home.dir, 'missing.json')], /^cannot read the config file .+missing\.json: ENOENT$/],
    [['health', '--config', notJson], /^the config file .+not\.json is not valid JSON: /],
    [
      ['health', '--config', unknownKey],
      /has an unknown key "serverr" \(known: server, timeout, discovery_url, client_id, client_secret, read_scope, write_scope\)$/,
    ],
    [['health', '--config', wrongType], /^"server" in .+wrong\.json must be a string$/],
    [['health', ...at, '--timeout', 'soon'], '--timeout must be a number of seconds'],
    [['health', ...at], 'MRMAT_CLIENT_TIMEOUT must be between 1 and 600 seconds, not 0', { MRMAT_CLIENT_TIMEOUT: '0' }],
    [['health', ...at], 'MRMAT_CLIENT_JSON must be true or false, not "maybe"', { MRMAT_CLIENT_JSON: 'maybe' }],
    [['health', ...at, '-q', '-d'], '--quiet and --debug contradict each other: pick one'],
    [['greeting', 'v4'], 'Invalid values: Argument: api-version, Given: "v4", Choices: "v1", "v2", "v3"'],
    [['greeting', 'v1', '--name', 'x', ...at], '--name is for greeting v2 only'],
    [['resource', 'get', '1.5', ...at], notResource('1.5')],
    [['resource', 'delete', '0', ...at], notResource('0')],
    [['resource', 'create', ' ', ...at], 'a resource name must not be blank'],
    [['resource', 'list', '--limit', '0', ...at], '--limit must be a whole number from 1 to 1000'],
    [['resource', 'list', '--after', '5', ...at], '--after needs --limit: without it every resource is listed'],
    [
      ['resource', 'list', '--read-scope', 'two scopes', ...at],
      '--read-scope must be one scope without spaces or quotes: "two scopes"',
    ],
    [['resource', 'rename', '1'], 'Not enough non-option arguments: got 1, need at least 2'],
    [['resource'], 'name a resource command: list, get, create, rename or delete'],
    [[], 'name a command: login, logout, status, greeting, resource or health'],
    [[...login, '--poll-interval', 'fast'], '--poll-interval must be a number of seconds'],
    [
      login,
      'MRMAT_CLIENT_POLL_INTERVAL must be between 0.01 and 600 seconds, not 0',
      { MRMAT_CLIENT_POLL_INTERVAL: '0' },
    ],
    [['logout', ...at, '--discovery-url', server], /^no client id is configured: set --client-id, MRMAT_CLIENT_ID or "client_id" in /],
  ]
  for (const [args, message, env] of cases) {
    const { code, stdout, stderr } = await runHere(args, { ...home.env, ...env })
    const name = `${args.join(' ')} ${JSON.stringify(env ?? {})}`
    t.equal(code, 2, `${name}: exit 2`)
    t.equal(stdout, '', `${name}: nothing on stdout`)
    const [line = '', hint, ...more] = lines(stderr)
    const expected = typeof message === 'string' ? new RegExp(`^${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) : message
    t.match(line.replace(`${CLIENT_NAME}: `, ''), expected, name)
    t.same([hint, more], [USAGE_HINT, []], `${name}: the hint, nothing more`)
  }
})

t.test('a server that is not this API, or too slow, is one line and exit 1', async (t) => {
  const held: (() => void)[] = []
  const server = createServer((req, res) => {
    if (req.url?.startsWith('/slow/') === true) {
      held.push(() => res.end())
      return
    }
    res.writeHead(200, { 'content-type': 'text/html' }).end('<html>a web page</html>')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => new Promise<void>((resolve) => {
    for (const release of held) release()
    server.closeAllConnections()
    server.close(() => { resolve() })
  }))
  const url = `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`
  const home = clientHome(t)
  const page = await runHere(['health', '--server', url], home.env)
  const notThisApi = `${CLIENT_NAME}: the server at ${url} answered 200 with something other than this API's JSON;`
    + ' is --server right?'
  t.same([page.code, lines(page.stderr)], [1, [notThisApi]])
  const started = Date.now()
  const slow = await runHere(['greeting', '--server', `${url}/slow/`, '--timeout', '1'], home.env)
  t.same([slow.code, lines(slow.stderr)], [1, [`${CLIENT_NAME}: the server at ${url}/slow/ did not answer within 1 s`]])
  t.ok(Date.now() - started < 5000, 'gives up after the timeout')
})

t.test('the cache key keeps servers, providers and clients apart', async (t) => {
  const env = { XDG_CACHE_HOME: '/cache' }
  const key = { server: new URL('http://a/'), discoveryUrl: new URL('http://idp/.well-known/openid-configuration'), clientId: 'c' }
  const paths = [
    cacheFile(env, key),
    cacheFile(env, { ...key, server: new URL('http://b/') }),
    cacheFile(env, { ...key, discoveryUrl: new URL('http://idp2/.well-known/openid-configuration') }),
    cacheFile(env, { ...key, clientId: 'd' }),
  ]
  t.equal(new Set(paths).size, 4)
  t.match(paths[0], /^\/cache\/mrmat-ts-api-fastify\/tokens-[0-9a-f]{16}\.json$/)
  const inHome = cacheFile({ HOME: '/home/u' }, key)
  t.equal(inHome.startsWith('/home/u/.cache/mrmat-ts-api-fastify/'), true, '~/.cache without XDG_CACHE_HOME')
  t.equal(cacheFile(env, key), paths[0], 'stable')
})
