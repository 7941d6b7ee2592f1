import t from 'tap'
import { challengeOf, Problems, READ_SCOPE, WRITE_SCOPE } from './helpers/auth.js'
import type { SendOptions } from './helpers/http.js'
import {
  ALICE, ORIGIN, assertInvalid, assertProblem, create, onEachDialect, ownersOf, snapshot, type Resource,
} from './helpers/resource.js'

// Resource v1: what it refuses, and that a refusal writes nothing (see helpers/resource.ts).

/** Resource writes take at most 8 KiB, below the server's own 1 MiB: a name fits many times over. */
const BODY_LIMIT = 8 * 1024

/** A JSON object opened by `head`, padded with spaces and closed to exactly `bytes` bytes. */
function padded(head: string, bytes: number): string {
  const body = `${head}${' '.repeat(bytes - Buffer.byteLength(head) - 1)}}`
  if (Buffer.byteLength(body) !== bytes) {
    throw new Error(`padded body is ${String(Buffer.byteLength(body))} bytes, not ${String(bytes)}`)
  }
  return body
}

onEachDialect(t, (t, world) => {
  const { db } = world

  t.test('scopes: reading needs the read scope, writing the write scope, and no token is a 401', async (t) => {
    const full = await world.token(ALICE)
    const readOnly = await world.token(ALICE, 'read')
    const writeOnly = await world.token(ALICE, 'write')
    const resource = await create(world, full, 'scoped')
    const list = `${world.base}/`
    const item = world.url(resource.id)

    const before = await snapshot(db)
    const writes: [string, string, SendOptions][] = [
      ['POST', list, { json: { name: 'read-only-create' } }],
      ['PUT', item, { json: { name: 'read-only-rename' } }],
      ['DELETE', item, {}],
    ]
    for (const [method, url, options] of writes) {
      const reply = await world.call(method, url, { ...options, token: readOnly })
      const insufficient = { type: Problems.insufficientScope, title: 'Insufficient scope' }
      assertProblem(t, reply, 403, `${method} with a read-only token`, insufficient)
      t.match(challengeOf(reply), { scheme: 'Bearer', params: { error: 'insufficient_scope', scope: WRITE_SCOPE } },
        `${method}: the challenge names the write scope`)
    }
    const newcomer = world.fresh('read-only-newcomer')
    const newcomerToken = await world.person(newcomer, 'Newcomer', 'read')
    const refused = await world.call('POST', list, { token: newcomerToken, json: { name: 'nope' } })
    t.equal(refused.status, 403, 'a read-only newcomer cannot create')
    t.strictSame(await snapshot(db), before, 'read-only tokens changed nothing, made no owner row')

    for (const url of [list, item]) {
      const path = url.slice(ORIGIN.length)
      const reply = await world.call('GET', url, { token: writeOnly })
      assertProblem(t, reply, 403, `GET ${path} with a write-only token`, { type: Problems.insufficientScope })
      t.match(challengeOf(reply), { params: { error: 'insufficient_scope', scope: READ_SCOPE } },
        'the challenge names the read scope')
      t.equal((await world.call('GET', url, { token: readOnly })).status, 200, `GET ${path} with a read-only token`)
    }

    const created = await world.call('POST', list, { token: writeOnly, json: { name: 'write-only-create' } })
    t.equal(created.status, 201, 'a write-only token creates')
    const createdId = (created.body as Resource).id
    const createdUrl = world.url(createdId)
    const renamed = await world.call('PUT', createdUrl, { token: writeOnly, json: { name: 'write-only-rename' } })
    t.equal(renamed.status, 200, 'and renames')
    t.equal((await world.call('DELETE', createdUrl, { token: writeOnly })).status, 204, 'and deletes')

    const anonymous = await snapshot(db)
    const everything: [string, string, SendOptions][] = [['GET', list, {}], ['GET', item, {}], ...writes]
    for (const [method, url, options] of everything) {
      const reply = await world.call(method, url, options)
      assertProblem(t, reply, 401, `${method} without a token`, { type: Problems.tokenRequired })
      t.match(reply.headers['www-authenticate'], /^Bearer realm=/, `${method}: a Bearer challenge`)
    }
    t.strictSame(await snapshot(db), anonymous, 'requests without a token changed nothing')
  })

  t.test('invalid bodies are refused with a problem and write nothing', async (t) => {
    interface BadBody {
      what: string
      raw?: string
      contentType?: string
      status: number
      /** The body field `errors` must name, for validation failures. */
      field?: string
    }
    const json = 'application/json'
    const cases: BadBody[] = [
      { what: 'a number for the name', raw: '{"name": 1}', status: 400, field: '/name' },
      { what: 'a boolean for the name', raw: '{"name": true}', status: 400, field: '/name' },
      { what: 'an array for the name', raw: '{"name": ["x"]}', status: 400, field: '/name' },
      { what: 'an object for the name', raw: '{"name": {"first": "x"}}', status: 400, field: '/name' },
      { what: 'null for the name', raw: '{"name": null}', status: 400, field: '/name' },
      { what: 'an extra field', raw: '{"name": "fine", "extra": 1}', status: 400, field: '/extra' },
      {
        what: 'an owner of its own choosing',
        raw: '{"name": "fine", "owner": {"subject": "someone-else"}}',
        status: 400,
        field: '/owner',
      },
      { what: 'an id of its own choosing', raw: '{"id": 1, "name": "fine"}', status: 400, field: '/id' },
      { what: 'an empty object', raw: '{}', status: 400, field: '/name' },
      { what: 'an empty name', raw: '{"name": ""}', status: 400, field: '/name' },
      { what: 'a name of spaces', raw: '{"name": "   "}', status: 400, field: '/name' },
      { what: 'a name of Unicode spaces', raw: '{"name": "\\u00a0\\u2003\\u3000"}', status: 400, field: '/name' },
      { what: 'a name of 256 characters', raw: JSON.stringify({ name: 'n'.repeat(256) }), status: 400, field: '/name' },
      { what: 'a NUL', raw: '{"name": "a\\u0000b"}', status: 400, field: '/name' },
      { what: 'a bell', raw: '{"name": "a\\u0007b"}', status: 400, field: '/name' },
      { what: 'a tab inside', raw: '{"name": "a\\tb"}', status: 400, field: '/name' },
      { what: 'a tab at the edge (trimming would drop it)', raw: '{"name": "\\tpadded"}', status: 400, field: '/name' },
      { what: 'a newline inside', raw: '{"name": "a\\nb"}', status: 400, field: '/name' },
      { what: 'a terminal escape', raw: '{"name": "\\u001b[31mred"}', status: 400, field: '/name' },
      { what: 'a DEL', raw: '{"name": "a\\u007fb"}', status: 400, field: '/name' },
      { what: 'a C1 control (NEL, U+0085)', raw: '{"name": "a\\u0085b"}', status: 400, field: '/name' },
      { what: 'a C1 control (CSI, U+009B)', raw: '{"name": "\\u009b31mred"}', status: 400, field: '/name' },
      { what: 'an array body', raw: '[{"name": "fine"}]', status: 400, field: '/' },
      { what: 'a string body', raw: '"fine"', status: 400, field: '/' },
      { what: 'a null body', raw: 'null', status: 400, field: '/' },
      { what: 'malformed JSON', raw: '{"name": "fine"', status: 400 },
      { what: 'JSON with a __proto__ key', raw: '{"name": "fine", "__proto__": {"x": 1}}', status: 400 },
      { what: 'an empty body labelled JSON', raw: '', status: 400 },
      { what: 'no body at all', contentType: undefined, status: 400, field: '/' },
      { what: 'a text/plain body', raw: '{"name": "fine"}', contentType: 'text/plain', status: 415 },
      { what: 'a form body', raw: 'name=fine', contentType: 'application/x-www-form-urlencoded', status: 415 },
      // Valid JSON with a valid name, padded with whitespace past the limit: only the size is wrong.
      { what: 'a body of 8 KiB + 1 byte', raw: padded('{"name": "fine"', BODY_LIMIT + 1), status: 413 },
    ]
    const editor = world.fresh('editor')
    const editorToken = await world.person(editor, 'Editor')
    const target = await create(world, editorToken, 'untouched')

    for (const { what, raw, contentType, status, field } of cases) {
      const options: SendOptions = raw === undefined
        ? {}
        : { body: raw, headers: { 'content-type': contentType ?? json } }
      const subject = world.fresh('invalid')
      const before = await snapshot(db)

      const newcomerToken = await world.person(subject, 'Invalid')
      const post = await world.call('POST', `${world.base}/`, { ...options, token: newcomerToken })
      if (field === undefined) assertProblem(t, post, status, `POST ${what}`)
      else assertInvalid(t, post, 'body', field, `POST ${what}`)
      const put = await world.call('PUT', world.url(target.id), { ...options, token: editorToken })
      if (field === undefined) assertProblem(t, put, status, `PUT ${what}`)
      else assertInvalid(t, put, 'body', field, `PUT ${what}`)

      t.strictSame(await snapshot(db), before, `${what}: no row written or changed`)
      t.strictSame(await ownersOf(db, subject), [], `${what}: no owner row for the new caller`)
    }

    const exact = padded('{"name": "exactly 8 KiB"', BODY_LIMIT)
    const atLimit = await world.call('POST', `${world.base}/`, {
      token: editorToken, body: exact, headers: { 'content-type': json },
    })
    t.equal(atLimit.status, 201, 'a body of exactly 8 KiB is accepted')
    const charset = await world.call('POST', `${world.base}/`, {
      token: editorToken,
      body: '{"name": "with charset"}',
      headers: { 'content-type': 'application/json; charset=utf-8' },
    })
    t.equal(charset.status, 201, 'application/json with a charset is JSON')
  })
})
