import type { PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise'
import { codedError } from '#src/lib/errors.js'
import { batchedLookup } from '#src/plugins/database/batched-lookup.js'
import type { MysqlDatabase } from '#src/plugins/database/database.js'
import { nameClash, type Caller, type ResourceRepository } from './repository.js'
import type { Resource } from './schemas.js'

/** The bytes owners.subject holds (schema/mysql.ts). */
const MAX_SUBJECT_BYTES = 1024

/** A token whose `sub` is longer than the owners table keeps cannot own anything here: 403, not a failed insert. */
export const SubjectTooLongError = codedError('MRMAT_RESOURCE_SUBJECT_TOO_LONG', { statusCode: 403 })

/** Errors after which InnoDB has rolled the transaction (or its statement) back, and trying again may succeed. */
const RETRIABLE = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT'])
const ATTEMPTS = 3

const JOINED = 'SELECT r.id, r.name, o.id AS owner_id, o.subject, o.name AS owner_name '
  + 'FROM resources r JOIN owners o ON o.id = r.owner_id'
// The gets of one moment are one statement of all their ids (batchedLookup), formatted by the driver: `IN (?)` of an
// array of numbers becomes `IN (1, 2, …)`.
const GET_MANY = `${JOINED} WHERE r.id IN (?)`
// Formatted by the driver rather than prepared: MySQL's prepared LIMIT takes no parameter as mysql2 sends numbers.
const LIST = `${JOINED} WHERE r.id > ? ORDER BY r.id LIMIT ?`
const OWNER_OF = 'SELECT id, name FROM owners WHERE subject = ?'
// LAST_INSERT_ID(id) hands back the existing row's id when a concurrent first write of the same subject won.
const INSERT_OWNER = 'INSERT INTO owners (subject, name) VALUES (?, ?) ON DUPLICATE KEY UPDATE name = ?, '
  + 'id = LAST_INSERT_ID(id)'
const RENAME_OWNER = 'UPDATE owners SET name = ? WHERE id = ?'
const INSERT_RESOURCE = 'INSERT INTO resources (owner_id, name) VALUES (?, ?)'
// The resource row is locked until the commit: nobody renames or deletes it between this check and the write.
const HOLDER = 'SELECT r.owner_id AS holder, (SELECT id FROM owners WHERE subject = ?) AS caller '
  + 'FROM resources r WHERE r.id = ? FOR UPDATE'
const RENAME = 'UPDATE resources r JOIN owners o ON o.id = r.owner_id SET r.name = ?, o.name = ? WHERE r.id = ?'
const REMOVE = 'DELETE FROM resources WHERE id = ?'

interface ResourceRow extends RowDataPacket {
  id: number
  name: string
  owner_id: number
  /** varbinary: bytes, UTF-8 as the token's `sub` was. */
  subject: Buffer
  owner_name: string
}

function toResource(row: ResourceRow): Resource {
  return { id: row.id, name: row.name, owner: { id: row.owner_id, subject: row.subject.toString('utf8'),
    name: row.owner_name } }
}

interface HolderRow extends RowDataPacket {
  holder: number
  caller: number | null
}

interface OwnerRow extends RowDataPacket {
  id: number
  name: string
}

/**
 * MySQL and MariaDB have no data-modifying CTE (and MySQL no RETURNING): each write is a short transaction of
 * prepared statements on one pooled connection, tried again when InnoDB picks it as a deadlock's victim. Duplicate
 * names are still the unique index's call (ER_DUP_ENTRY → 409). Plain SQL through mysql2 rather than drizzle's query
 * builder: its MySQL types made the whole build a third slower to type-check.
 */
export function mysqlResources(database: MysqlDatabase): ResourceRepository {
  const { pool } = database
  const getOne = batchedLookup(async (ids: number[]) => (await pool.query<ResourceRow[]>(GET_MANY, [ids]))[0],
    (row) => row.id)

  async function transaction<T>(caller: Caller, work: (connection: PoolConnection) => Promise<T>): Promise<T> {
    if (Buffer.byteLength(caller.subject) > MAX_SUBJECT_BYTES) {
      throw new SubjectTooLongError(`The token's subject is longer than the ${String(MAX_SUBJECT_BYTES)} bytes `
        + 'this server keeps of an owner')
    }
    for (let attempt = 1; ; attempt += 1) {
      const connection = await pool.getConnection()
      try {
        await connection.query('START TRANSACTION')
        const result = await work(connection)
        await connection.query('COMMIT')
        connection.release()
        return result
      } catch (error) {
        // A connection that cannot even roll back is broken: it must not go back to the pool.
        const rolledBack = await connection.query('ROLLBACK').then(() => true, () => false)
        if (rolledBack) connection.release()
        else connection.destroy()
        const code = (error as { code?: unknown }).code
        if (attempt < ATTEMPTS && typeof code === 'string' && RETRIABLE.has(code)) continue
        throw nameClash(error)
      }
    }
  }

  async function holderOf(connection: PoolConnection, caller: Caller, id: number): Promise<HolderRow | undefined> {
    const [rows] = await connection.execute<HolderRow[]>(HOLDER, [caller.subject, id])
    return rows[0]
  }

  return {
    async list(after, limit) {
      const [rows] = await pool.query<ResourceRow[]>(LIST, [after, limit])
      return rows.map(toResource)
    },
    async get(id) {
      const row = await getOne(id)
      return row === undefined ? undefined : toResource(row)
    },
    async create(caller, name) {
      return transaction(caller, async (connection) => {
        const [found] = await connection.execute<OwnerRow[]>(OWNER_OF, [caller.subject])
        let ownerId = found[0]?.id
        if (ownerId === undefined) {
          const [inserted] = await connection.execute<ResultSetHeader>(INSERT_OWNER,
            [caller.subject, caller.name, caller.name])
          ownerId = inserted.insertId
        } else if (found[0]?.name !== caller.name) {
          await connection.execute(RENAME_OWNER, [caller.name, ownerId])
        }
        const [created] = await connection.execute<ResultSetHeader>(INSERT_RESOURCE, [ownerId, name])
        return { id: created.insertId, name, owner: { id: ownerId, subject: caller.subject, name: caller.name } }
      })
    },
    async rename(caller, id, name) {
      return transaction(caller, async (connection) => {
        const row = await holderOf(connection, caller, id)
        if (row === undefined) return 'not-found' as const
        if (row.caller !== row.holder) return 'forbidden' as const
        await connection.execute(RENAME, [name, caller.name, id])
        return { id, name, owner: { id: row.holder, subject: caller.subject, name: caller.name } }
      })
    },
    async remove(caller, id) {
      return transaction(caller, async (connection) => {
        const row = await holderOf(connection, caller, id)
        if (row === undefined) return 'not-found' as const
        if (row.caller !== row.holder) return 'forbidden' as const
        await connection.execute(REMOVE, [id])
        await connection.execute(RENAME_OWNER, [caller.name, row.holder])
        return 'deleted' as const
      })
    },
  }
}
