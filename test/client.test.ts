import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { approveDevice, deviceTokens } from './fixtures/oidc-provider.js'
import { READ_SCOPE, WRITE_SCOPE } from './helpers/auth.js'
import { clientHome, clientProcess, lines, runClient, runHere, seedCache, startStack } from './helpers/client.js'

const CONFLICT = /^mrmat-ts-api-fastify-client: the server says: 409 Conflict: .+ \(request id [\w-]+\)$/

t.test('device flow: the person who approves is the one greeted, and manages resources', async (t) => {
  const stack = await startStack(t)
  const home = clientHome(t, stack.config)
  // A few commands run as a process, for their exit codes (0 and 1) and that nothing keeps the process alive after.
  const child = async (...args: string[]) => runClient(t, args, home.env)
  const here = async (...args: string[]) => runHere(args, home.env)

  const login = await clientProcess(t, ['login', '--poll-interval', '0.1'], home.env)
  const [, userCode = ''] = await login.waitForLine(/enter the code (\S+)$/)
  t.match(login.stdout, `To sign in, open ${stack.provider.issuer}/device and enter the code ${userCode}\n`)
  await approveDevice(stack.provider, userCode, 'alice')
  const loggedIn = await login.waitForExit()
  t.equal(loggedIn.code, 0, 'login exits 0')
  t.match(loggedIn.stdout, /^or open http:\/\/127\.0\.0\.1:\d+\/device\?user_code=/m, 'prints verification_uri_complete')
  t.match(loggedIn.stdout, `Logged in to ${stack.server} as alice.\n`)
  t.match(loggedIn.stderr, /^Waiting for the sign-in to complete…$/m, 'a plain progress line, not a spinner, when not a terminal')
  const controls = ['\r', '\u001b'].filter((control) => loggedIn.stderr.includes(control))
  t.same(controls, [], 'no terminal control characters in a pipe')

  const [file, ...others] = readdirSync(home.cacheDir)
  t.same(others, [], 'one cache file')
  t.match(file, /^tokens-[0-9a-f]{16}\.json$/)
  t.equal(statSync(join(home.cacheDir, file ?? '')).mode & 0o777, 0o600, 'the cache file is the user\'s alone')
  t.equal(statSync(home.cacheDir).mode & 0o777, 0o700, 'so is its folder')

  const greeting = await child('greeting', 'v3')
  t.same([greeting.code, greeting.stdout, greeting.stderr], [0, 'Hello alice\n', ''], 'greeting v3 greets alice')
  t.same(JSON.parse((await here('greeting', 'v3', '--json')).stdout), { message: 'Hello alice' })

  const created = await here('resource', 'create', 'first')
  t.same([created.code, created.stdout], [0, 'Created resource 1: first\n'])
  const again = await here('resource', 'create', 'first')
  t.equal(again.code, 1, 'a name taken: exit 1')
  t.equal(again.stdout, '')
  t.match(lines(again.stderr), [CONFLICT], 'the problem detail on one line')
  const second = await here('resource', 'create', 'second', '--json')
  t.equal(second.code, 0)
  t.match(JSON.parse(second.stdout), { id: 2, name: 'second', owner: { subject: 'alice', name: 'alice' } })

  const list = await here('resource', 'list')
  t.equal(list.code, 0)
  t.match(lines(list.stdout), [/^ID +NAME +OWNER$/, /^1 +first +alice$/, /^2 +second +alice$/])
  type Listed = { resources: { id: number, name: string }[], next: unknown }
  const listed = JSON.parse((await here('resource', 'list', '--json')).stdout) as Listed
  t.same(listed.resources.map((r) => r.id), [1, 2])
  t.equal(listed.next, null)

  const firstPage = await here('resource', 'list', '--limit', '1')
  t.match(lines(firstPage.stdout), [/^ID/, /^1 +first/])
  t.equal(lines(firstPage.stdout).length, 2, 'one page of one')
  t.equal(firstPage.stderr, 'More: mrmat-ts-api-fastify-client resource list --limit 1 --after 1\n')
  const next = await here('resource', 'list', '--limit', '1', '--after', '1', '--json')
  const secondPage = JSON.parse(next.stdout) as Listed
  t.same([secondPage.resources.map((r) => r.name), secondPage.next], [['second'], null])

  const got = await here('resource', 'get', '1')
  t.match(lines(got.stdout), [/^ID/, /^1 +first +alice$/])
  const missing = await child('resource', 'get', '99')
  t.equal(missing.code, 1, '404: exit 1')
  t.match(lines(missing.stderr), [/^mrmat-ts-api-fastify-client: the server says: 404 Not Found: There is no resource 99 \(request id [\w-]+\)$/])
  const missingJson = await here('resource', 'get', '99', '--json')
  t.equal(missingJson.code, 1)
  t.match(JSON.parse(missingJson.stdout), {
    status: 404,
    title: 'Not Found',
    detail: 'There is no resource 99',
    instance: '/api/resource/v1/99',
  }, 'the problem body as JSON')

  const renamed = await here('resource', 'rename', '1', 'renamed')
  t.same([renamed.code, renamed.stdout], [0, 'Renamed resource 1: renamed\n'])
  const clash = await here('resource', 'rename', '1', 'second')
  t.equal(clash.code, 1)
  t.match(lines(clash.stderr), [CONFLICT])
  t.match(JSON.parse((await here('resource', 'rename', '1', 'again', '--json')).stdout), { id: 1, name: 'again' })

  const deleted = await here('resource', 'delete', '1')
  t.same([deleted.code, deleted.stdout], [0, 'Deleted resource 1\n'])
  const deletedAgain = await here('resource', 'delete', '1', '--json')
  t.equal(deletedAgain.code, 1)
  t.match(JSON.parse(deletedAgain.stdout), { status: 404 })
  t.same(JSON.parse((await here('resource', 'delete', '2', '--json')).stdout), { id: 2, deleted: true })
  t.equal((await here('resource', 'list')).stdout, 'No resources.\n')
  t.same(stack.provider.serverErrors, [])
})

t.test('resource list follows next across pages; someone else\'s resource cannot be renamed', async (t) => {
  const stack = await startStack(t)
  const home = clientHome(t, stack.config)
  const scope = `openid profile offline_access ${READ_SCOPE} ${WRITE_SCOPE}`
  seedCache(home, stack, await deviceTokens(stack.provider, 'bob', { scope }))
  await stack.database.exec(`INSERT INTO owners (id, subject, name) VALUES (1, 'carol', 'carol');
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 205)
    INSERT INTO resources (owner_id, name) SELECT 1, 'r' || i FROM n;`)
  const all = await runHere(['resource', 'list', '--json'], home.env)
  const { resources } = JSON.parse(all.stdout) as { resources: { id: number }[] }
  t.same(resources.map((r) => r.id), Array.from({ length: 205 }, (_, i) => i + 1), 'all 205, in order, without a gap')
  const debug = await runHere(['resource', 'list', '--debug'], home.env)
  t.equal(lines(debug.stdout).length, 206, 'a header and 205 rows')
  t.equal(debug.stderr.match(/^debug: GET \S*\/api\/resource\/v1\S*: 200 in \d+ ms$/gm)?.length, 3, 'three pages of 100')
  t.notMatch(debug.stderr, /Bearer|eyJ/, 'debug lines never show a token')
  const foreign = await runHere(['resource', 'rename', '3', 'mine now'], home.env)
  t.equal(foreign.code, 1)
  t.match(lines(foreign.stderr), [/the server says: 403 Forbidden: Resource 3 belongs to someone else/])
})
