// The MySQL driver alone, for npm run bench: the statements the server runs, in a loop on a pool of the server's
// size with the bench's concurrency, for a number of seconds. Prints {"qps": …} and exits.
// Usage: node mysql-loop.mjs <url> <get|create> <pool size> <concurrency> <seconds> <resource id>
import { randomBytes } from 'node:crypto'
import mysql from 'mysql2/promise'

const [url, kind, poolSize, concurrency, seconds, resourceId] = process.argv.slice(2)
const target = new URL(url)
const pool = mysql.createPool({
  host: target.hostname,
  port: Number(target.port || 3306),
  user: decodeURIComponent(target.username),
  password: decodeURIComponent(target.password),
  database: target.pathname.slice(1),
  connectionLimit: Number(poolSize),
  charset: 'UTF8MB4_BIN',
})
// The statements of plugins/resource/v1/repository-mysql.ts: a read is one query, a create a transaction of four.
const GET = 'SELECT r.id, r.name, o.id AS owner_id, o.subject, o.name AS owner_name '
  + 'FROM resources r JOIN owners o ON o.id = r.owner_id WHERE r.id = ?'
const OWNER_OF = 'SELECT id, name FROM owners WHERE subject = ?'
const INSERT_OWNER = 'INSERT INTO owners (subject, name) VALUES (?, ?) ON DUPLICATE KEY UPDATE name = ?, '
  + 'id = LAST_INSERT_ID(id)'
const INSERT_RESOURCE = 'INSERT INTO resources (owner_id, name) VALUES (?, ?)'

async function create(name) {
  const connection = await pool.getConnection()
  try {
    await connection.query('START TRANSACTION')
    const [found] = await connection.execute(OWNER_OF, ['mysql-loop'])
    let ownerId = found[0]?.id
    if (ownerId === undefined) {
      ownerId = (await connection.execute(INSERT_OWNER, ['mysql-loop', 'mysql-loop', 'mysql-loop']))[0].insertId
    }
    await connection.execute(INSERT_RESOURCE, [ownerId, name])
    await connection.query('COMMIT')
  } catch (error) {
    await connection.query('ROLLBACK')
    throw error
  } finally {
    connection.release()
  }
}

const prefix = randomBytes(4).toString('hex')
let done = 0
// Names are taken before the await: `done` counts completions, and loops waiting at once would share one.
let named = 0
const deadline = Date.now() + Number(seconds) * 1000
async function loop() {
  while (Date.now() < deadline) {
    if (kind === 'get') await pool.execute(GET, [Number(resourceId)])
    else await create(`loop-${prefix}-${named++}`)
    done++
  }
}
const started = Date.now()
await Promise.all(Array.from({ length: Number(concurrency) }, loop))
process.stdout.write(`${JSON.stringify({ qps: done / ((Date.now() - started) / 1000) })}\n`)
await pool.end()
