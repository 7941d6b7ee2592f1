import fc from 'fast-check'
import t from 'tap'
import { resolveAuthSettings } from '#src/plugins/auth/settings.js'
import { freshSqlite } from '../fixtures/databases.js'
import { startTestProvider } from '../fixtures/oidc-provider.js'
import { build } from '../helpers/app.js'
import { READ_SCOPE, WRITE_SCOPE } from '../helpers/auth.js'
import { sized } from '../helpers/reliability.js'

// Hostile input, property-based: requests made of random methods, routes, path segments, query strings, content
// types and bodies (random JSON, wrong types, huge and deeply nested values, lone surrogates, NUL, bidi overrides,
// prototype-pollution keys, invalid UTF-8, Infinity and 1e309) against the real app with a valid token, so that
// they reach parsing, validation and the handlers. Never a 500, every 4xx a problem body of its status, and the rows
// in the database are exactly those the 201s created and the 204s did not delete. The seed is printed; set
// MRMAT_FUZZ_SEED to replay a run. Partial and pipelined requests over a socket are in security-input.test.ts.

const RUNS = sized(3_000, 10_000)
const SEED = Number(process.env.MRMAT_FUZZ_SEED ?? Date.now() % 2_147_483_647)

const ROUTES = ['/api/greeting/v1', '/api/greeting/v2/', '/api/greeting/v3/', '/healthz/', '/healthz/readiness',
  '/api/resource/v1/', '/api/resource/v1/:id', '/api/nowhere', '/', '/api/resource/v1/:id/more']

/** Every byte of the text's UTF-8 percent-encoded (encodeURIComponent throws on a lone surrogate). */
function percent(text: string): string {
  return [...Buffer.from(text, 'utf8')].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('')
}

const hostileText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.constantFrom('\u0000', 'a\u0000b', '\u202Eevil\u202C', '\uD800', '\uDFFF', 'x\uD83D', '\uFEFF', ' ', '',
    'a'.repeat(256), 'a'.repeat(10_000), '__proto__', 'constructor', '%00', '%ff', '../..', '${x}', '<script>'),
)

const id = fc.oneof(
  fc.integer({ min: -5, max: 50 }).map(String),
  fc.constantFrom('0', '-1', '1e3', '1.5', '2147483647', '2147483648', '99999999999999999999', 'NaN', 'Infinity',
    '0x10', ' 1', '%20', '%00', 'abc', ''),
  hostileText.map(percent),
)

const hostileJsonText = fc.oneof(
  fc.json({ maxDepth: 4 }),
  fc.constantFrom('{"name": Infinity}', '{"name": 1e309}', '{"name": NaN}', '{"name": -0}', '{"name": 1e309}',
    '{"__proto__": {"polluted": true}, "name": "p"}', '{"constructor": {"prototype": {"polluted": true}}}',
    '{"name": "x", "name": "y"}', '{"name": "a", "extra": 1}', '{"name": null}', '{"name": ["a"]}',
    '{"name": {"$ne": ""}}', '{', '}', '[]', 'null', 'true', '"name"', '{"name": "\\ud800"}', '{"name": "\\u0000"}',
    '{"name": "\\u202e"}', `{"name": "${'a'.repeat(300)}"}`, `${'['.repeat(5_000)}${']'.repeat(5_000)}`,
    `{"name": ${'{"a":'.repeat(2_000)}1${'}'.repeat(2_000)}}`),
  hostileText.map((name) => JSON.stringify({ name })),
  fc.record({ name: fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.constant(null), hostileText) })
    .map((value) => JSON.stringify(value)),
)

const body = fc.oneof(
  { weight: 6, arbitrary: hostileJsonText.map((text) => Buffer.from(text, 'utf8')) },
  // Invalid UTF-8: a lone continuation byte, an overlong encoding, a truncated sequence.
  { weight: 1, arbitrary: fc.constantFrom([0x7b, 0x22, 0x6e, 0x22, 0x3a, 0x22, 0x80, 0x22, 0x7d], [0xc0, 0xaf],
    [0xe2, 0x82], [0xff, 0xfe, 0x00]).map((bytes) => Buffer.from(bytes)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)) },
)

const contentType = fc.constantFrom(undefined, 'application/json', 'application/json; charset=utf-8', 'text/plain',
  'application/x-www-form-urlencoded', 'application/json; charset=latin1', 'multipart/form-data; boundary=x',
  'application/problem+json', 'APPLICATION/JSON', '', 'application/json; charset=utf-16')

const query = fc.array(fc.tuple(fc.constantFrom('name', 'limit', 'after', 'x', '__proto__', 'name[]'), hostileText),
  { maxLength: 3 }).map((pairs) => pairs.map(([k, v]) => `${k}=${percent(v)}`).join('&'))

const request = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'),
  route: fc.constantFrom(...ROUTES),
  id,
  query,
  contentType,
  body: fc.option(body, { nil: undefined }),
})

t.test(`${String(RUNS)} hostile requests: never a 500, every 4xx a problem, no row from a refusal`, async (t) => {
  const db = freshSqlite(t)
  const provider = await startTestProvider(t)
  const auth = resolveAuthSettings({ issuer: provider.issuer, audience: provider.audience })
  const app = await build(t, { database: db, auth, swaggerUi: false })
  const token = await provider.sign({ sub: 'fuzzer', client_id: 'fuzzer', scope: `${READ_SCOPE} ${WRITE_SCOPE}` })
  const created = new Set<number>()
  const statuses = new Map<number, number>()
  const started = Date.now()

  const property = fc.asyncProperty(request, async (r) => {
    const path = r.route.replace(':id', r.id) + (r.query === '' ? '' : `?${r.query}`)
    const headers: Record<string, string> = { authorization: `Bearer ${token}` }
    if (r.contentType !== undefined) headers['content-type'] = r.contentType
    const reply = await app.inject({
      method: r.method as 'GET', url: path, headers, ...(r.body === undefined ? {} : { payload: r.body }),
    })
    statuses.set(reply.statusCode, (statuses.get(reply.statusCode) ?? 0) + 1)
    if (reply.statusCode >= 500) throw new Error(`${String(reply.statusCode)} for ${r.method} ${path}: ${reply.body}`)
    if (reply.statusCode >= 400 && r.method !== 'HEAD') {
      if (!/^application\/problem\+json/.test(String(reply.headers['content-type']))) {
        throw new Error(`${String(reply.statusCode)} without a problem body for ${r.method} ${path}`)
      }
      const problem = reply.json<{ status?: number, type?: string, detail?: string }>()
      const shaped = typeof problem.type === 'string' && typeof problem.detail === 'string'
      if (problem.status !== reply.statusCode || !shaped) {
        throw new Error(`a malformed problem for ${r.method} ${path}: ${reply.body}`)
      }
      if (/\n\s+at |node_modules|SqliteError/.test(reply.body)) throw new Error(`internals leaked: ${reply.body}`)
    }
    if (reply.statusCode === 201) created.add(reply.json<{ id: number }>().id)
    if (reply.statusCode === 204 && r.method === 'DELETE') created.delete(Number(r.id))
  })
  const outcome = await fc.check(property, { numRuns: RUNS, seed: SEED })
  const rows = (await db.query<{ id: number }>('SELECT id FROM resources ORDER BY id')).map((row) => row.id)
  t.comment(`seed ${String(SEED)}: ${String(outcome.numRuns)} requests in ${String(Date.now() - started)} ms; ` +
    `statuses ${[...statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${String(n)}× ${String(s)}`).join(', ')}; ` +
    `${String(rows.length)} rows`)
  t.notOk(outcome.failed, outcome.failed ? fc.defaultReportMessage(outcome) ?? 'failed' : 'the property held')
  t.same(rows, [...created].sort((a, b) => a - b), 'the rows are exactly those created and not deleted')
  t.same(({} as Record<string, unknown>).polluted, undefined, 'no prototype was polluted')
})
