import { existsSync, mkdirSync, statSync } from 'node:fs'
import { open, stat, type FileHandle } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import BetterSqlite3 from 'better-sqlite3'
import { drizzle } from 'drizzle-orm/better-sqlite3'
import { migrate } from 'drizzle-orm/better-sqlite3/migrator'
import { migrationsFolder } from '../../lib/package-info.js'
import { answers, DatabaseError, type SqliteDatabase } from './database.js'
import { groupCommit, LOCK_ATTEMPT_MS } from './group-commit.js'
import { readBatch } from './read-batch.js'
import * as schema from './schema/sqlite.js'
import { SQLITE_MEMORY } from './url.js'

const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1')

const DEFAULT_BUSY_TIMEOUT = 5_000

/**
 * better-sqlite3's addon where npm builds or downloads it, or undefined to let better-sqlite3 look. Its own look-up
 * (the `bindings` package) reads a stack trace to find the package and tries a dozen paths in turn: a few
 * milliseconds of every start.
 */
function sqliteAddon(): string | undefined {
  try {
    const root = dirname(createRequire(import.meta.url).resolve('better-sqlite3/package.json'))
    const addon = join(root, 'build', 'Release', 'better_sqlite3.node')
    return existsSync(addon) ? addon : undefined
  } catch {
    return undefined
  }
}

export interface SqliteOptions {
  /** How long a writer waits for another connection's lock, in milliseconds (the event loop free meanwhile). */
  busyTimeout?: number
}

async function readHeader(file: string): Promise<Buffer> {
  let handle: FileHandle | undefined
  try {
    handle = await open(file, 'r')
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(SQLITE_HEADER.length), 0, SQLITE_HEADER.length, 0)
    return buffer.subarray(0, bytesRead)
  } finally {
    await handle?.close()
  }
}

export function openSqlite(file: string, options: SqliteOptions = {}): SqliteDatabase {
  const inMemory = file === SQLITE_MEMORY
  let connection: BetterSqlite3.Database
  try {
    if (!inMemory) mkdirSync(dirname(file), { recursive: true })
    const nativeBinding = sqliteAddon()
    connection = new BetterSqlite3(file, nativeBinding === undefined ? {} : { nativeBinding })
    // WAL lets readers run beside the writer; NORMAL sync is durable at checkpoints and safe in WAL.
    if (!inMemory) connection.pragma('journal_mode = WAL')
    connection.pragma('synchronous = NORMAL')
    // A statement blocks the event loop while SQLite's busy handler waits: briefly. Writes wait longer without
    // blocking (groupCommit), migrations at startup the whole busy timeout (nothing else is served yet).
    connection.pragma(`busy_timeout = ${String(LOCK_ATTEMPT_MS)}`)
    connection.pragma('foreign_keys = ON')
  } catch (error) {
    throw new DatabaseError(`cannot open the SQLite database ${file}: ${(error as Error).message}`)
  }
  // Remember which file was opened, so that readiness notices it being swapped underneath us.
  const opened = inMemory ? undefined : statSync(file)
  const orm = drizzle(connection, { schema })
  const busyTimeout = options.busyTimeout ?? DEFAULT_BUSY_TIMEOUT
  const writes = { errors: 0, busyWaitSeconds: 0, busyTimeouts: 0 }

  return {
    dialect: 'sqlite',
    description: `sqlite:${file}`,
    orm,
    connection,
    write: groupCommit(connection, busyTimeout, writes),
    read: readBatch(connection),
    stats: () => ({
      queryErrors: writes.errors,
      busy: { waitSeconds: writes.busyWaitSeconds, timeouts: writes.busyTimeouts },
    }),
    async migrate() {
      try {
        connection.pragma(`busy_timeout = ${String(busyTimeout)}`)
        migrate(orm, { migrationsFolder: migrationsFolder('sqlite') })
      } catch (error) {
        throw new DatabaseError(`cannot migrate the SQLite database ${file}: ${(error as Error).message}`)
      } finally {
        if (connection.open) connection.pragma(`busy_timeout = ${String(LOCK_ATTEMPT_MS)}`)
      }
    },
    async ping() {
      // In WAL mode SQLite answers from its cache while the WAL index is unchanged, so a query alone
      // does not notice the file being deleted, replaced or overwritten. Check the file too.
      if (!inMemory) {
        let current
        try {
          current = await stat(file)
        } catch {
          throw new Error('the database file is missing')
        }
        if (opened !== undefined && (current.ino !== opened.ino || current.dev !== opened.dev)) {
          throw new Error('the database file was replaced')
        }
        if (!(await readHeader(file)).equals(SQLITE_HEADER)) {
          throw new Error('the database file is not a SQLite database')
        }
      }
      await answers(() => connection.prepare('SELECT count(*) FROM sqlite_master').get())
    },
    async close() {
      if (connection.open) connection.close()
    },
  }
}
