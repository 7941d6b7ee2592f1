import { userInfo } from 'node:os'
import mysql from 'mysql2'
import { drizzle } from 'drizzle-orm/mysql2'
import { migrate } from 'drizzle-orm/mysql2/migrator'
import { migrationsFolder } from '../../lib/package-info.js'
import { answers, DatabaseError, type MysqlDatabase } from './database.js'
import * as schema from './schema/mysql.js'
import { describeDatabase } from './url.js'

export interface MysqlOptions {
  /** Connections in the pool. */
  poolSize?: number
  /** Milliseconds to wait for a connection before failing. */
  connectTimeout?: number
  /** Seconds a replica waits for another one's migration before giving up. */
  migrationLockTimeout?: number
}

/**
 * The GET_LOCK name that serialises migrations across processes. Lock names are the server's, not a database's: this
 * one names the database too, hashed, as MySQL takes at most 64 characters.
 */
const MIGRATION_LOCK = 'CONCAT(\'mrmat-ts-api-fastify:\', SHA1(DATABASE()))'

/**
 * Set on every connection before its first query. Strict mode turns an over-long value into an error rather than a
 * silently truncated row; NO_ENGINE_SUBSTITUTION refuses tables without InnoDB's transactions and foreign keys.
 * Read committed, as PostgreSQL's default: InnoDB's repeatable read adds gap locks, and with them deadlocks between
 * writes that do not touch the same rows.
 */
const SESSION_SETUP = [
  'SET SESSION sql_mode = \'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,'
    + 'NO_ENGINE_SUBSTITUTION\', time_zone = \'+00:00\'',
  'SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED',
]

/** What mysql2 takes from a mysql:// or mariadb:// URI; the user, as with the mysql client, defaults to the OS's. */
function connectionOf(url: string): mysql.PoolOptions {
  const parsed = new URL(url)
  return {
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: parsed.port === '' ? 3306 : Number(parsed.port),
    user: parsed.username === '' ? userInfo().username : decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
    database: decodeURIComponent(parsed.pathname.slice(1)),
  }
}

export async function openMysql(url: string, options: MysqlOptions = {}): Promise<MysqlDatabase> {
  const description = describeDatabase({ dialect: 'mysql', url })
  const callbackPool = mysql.createPool({
    ...connectionOf(url),
    connectionLimit: options.poolSize ?? 10,
    // Whatever the server's default: names are full Unicode, emoji included.
    charset: 'UTF8MB4_BIN',
    connectTimeout: options.connectTimeout ?? 5_000,
    // Let idle connections go, so a quiet replica does not hold the server's slots.
    maxIdle: 1,
    idleTimeout: 30_000,
    enableKeepAlive: true,
    // Integers stay numbers; DECIMAL and BIGINT are not used.
    supportBigNumbers: false,
  })
  callbackPool.on('connection', (connection) => {
    // Queued before the query that asked for this connection, so they run first. A connection they fail on is
    // destroyed rather than used without them.
    for (const statement of SESSION_SETUP) {
      connection.query(statement, (error) => {
        if (error !== null) connection.destroy()
      })
    }
  })
  const counted = countErrors(callbackPool)
  const pool = callbackPool.promise()
  try {
    await pool.query('SELECT 1')
  } catch (error) {
    await pool.end()
    throw new DatabaseError(`cannot connect to MySQL at ${description}: ${(error as Error).message}`)
  }
  let ended = false
  const orm = drizzle(callbackPool, { schema, mode: 'default' })
  return {
    dialect: 'mysql',
    description,
    orm,
    pool,
    stats: () => ({ queryErrors: counted.errors, pool: poolState(callbackPool) }),
    async migrate() {
      // Replicas starting together must not race: the first to take the lock migrates, the others wait for it and
      // then find nothing left to do. GET_LOCK belongs to the connection, so all of it happens on one.
      const connection = await pool.getConnection()
      try {
        const timeout = options.migrationLockTimeout ?? 300
        const [rows] = await connection.query<mysql.RowDataPacket[]>(
          `SELECT GET_LOCK(${MIGRATION_LOCK}, ?) AS locked`, [timeout])
        if (rows[0]?.locked !== 1) {
          throw new Error(`another process held the migration lock for more than ${String(timeout)} s`)
        }
        try {
          await migrate(drizzle(connection), { migrationsFolder: migrationsFolder('mysql') })
        } finally {
          await connection.query(`SELECT RELEASE_LOCK(${MIGRATION_LOCK})`)
        }
      } catch (error) {
        throw new DatabaseError(`cannot migrate the MySQL database ${description}: ${(error as Error).message}`)
      } finally {
        connection.release()
      }
    },
    async ping() {
      await answers(async () => pool.query('SELECT 1'))
    },
    async close() {
      if (ended) return
      ended = true
      await pool.end()
    },
  }
}

/**
 * mysql2's pool keeps its connections in fields it does not document (stable since mysql2 1.x); metrics read them.
 */
function poolState(pool: mysql.Pool): { size: number, idle: number, waiting: number } {
  const inner = pool as unknown as { _allConnections?: { length: number }, _freeConnections?: { length: number },
    _connectionQueue?: { length: number } }
  return {
    size: inner._allConnections?.length ?? 0,
    idle: inner._freeConnections?.length ?? 0,
    waiting: inner._connectionQueue?.length ?? 0,
  }
}

/**
 * Counts the statements that fail on the pool's connections: mysql2 runs every statement on one, its pool's query()
 * and execute() and the repository's transactions alike.
 */
function countErrors(pool: mysql.Pool): { errors: number } {
  const counted = { errors: 0 }
  const count = (connection: object): void => {
    const methods = connection as Record<string, unknown>
    for (const method of ['query', 'execute']) {
      const original = methods[method]
      if (typeof original !== 'function') continue
      methods[method] = function counting(this: unknown, ...args: unknown[]): unknown {
        const last = args.at(-1)
        if (typeof last === 'function') {
          args[args.length - 1] = (error: unknown, ...rest: unknown[]) => {
            if (error !== null && error !== undefined) counted.errors++
            ;(last as (...given: unknown[]) => void)(error, ...rest)
          }
        }
        // Without a callback (a streamed query) the caller listens for its errors: left alone.
        return (original as (...given: unknown[]) => unknown).apply(this, args)
      }
    }
  }
  pool.on('connection', count)
  return counted
}
