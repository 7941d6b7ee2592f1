// The PostgreSQL driver alone, for npm run bench: the same statement the server runs, in a loop on a pool of the
// server's size with the bench's concurrency, for a number of seconds. Prints {"qps": …} and exits.
// Usage: node pg-loop.mjs <url> <get|create> <pool size> <concurrency> <seconds> <resource id>
import { randomBytes } from 'node:crypto'
import { userInfo } from 'node:os'
import pg from 'pg'

const [url, kind, poolSize, concurrency, seconds, resourceId] = process.argv.slice(2)
// The operating system's user when the URI names none, as libpq (and the server) do. It goes into the URI: pg lets
// the URI's empty user override a `user` option, and $USER may be unset or empty (CI's is).
const target = new URL(url)
if (target.username === '') {
  target.username = [process.env.PGUSER, process.env.USER].find((name) => name !== undefined && name !== '')
    ?? userInfo().username
}
const pool = new pg.Pool({ connectionString: target.href, max: Number(poolSize) })
// The statements of plugins/resource/v1/repository-postgres.ts, prepared by name as there.
const GET = {
  name: 'bench_get',
  text: 'SELECT r.id, r.name, o.id AS owner_id, o.subject, o.name AS owner_name '
    + 'FROM resources r JOIN owners o ON o.id = r.owner_id WHERE r.id = $1',
}
const CREATE = {
  name: 'bench_create',
  text: `WITH o AS (
      INSERT INTO owners (subject, name) VALUES ($1, $2)
      ON CONFLICT (subject) DO UPDATE SET name = excluded.name
      RETURNING id, subject, name),
    r AS (INSERT INTO resources (owner_id, name) SELECT o.id, $3 FROM o RETURNING id, name)
    SELECT r.id, r.name, o.id AS owner_id, o.subject AS owner_subject, o.name AS owner_name FROM r, o`,
}
const prefix = randomBytes(4).toString('hex')
let done = 0
// Names are taken before the await: `done` counts completions, and loops waiting at once would share one.
let named = 0
const deadline = Date.now() + Number(seconds) * 1000
async function loop() {
  while (Date.now() < deadline) {
    if (kind === 'get') await pool.query({ ...GET, values: [Number(resourceId)] })
    else await pool.query({ ...CREATE, values: ['pg-loop', 'pg-loop', `loop-${prefix}-${named++}`] })
    done++
  }
}
const started = Date.now()
await Promise.all(Array.from({ length: Number(concurrency) }, loop))
process.stdout.write(`${JSON.stringify({ qps: done / ((Date.now() - started) / 1000) })}\n`)
await pool.end()
