import { asc, eq, gt, sql } from 'drizzle-orm'
import { batchedLookup } from '#src/plugins/database/batched-lookup.js'
import type { PostgresDatabase } from '#src/plugins/database/database.js'
import { owners, resources } from '#src/plugins/database/schema/postgres.js'
import { nameClash, resourceOf, type Caller, type ResourceRepository, type ResourceRow } from './repository.js'
import type { Resource } from './schemas.js'

interface WrittenRow {
  id: number | null
  name: string | null
  owner_id: number | null
  owner_subject: string | null
  owner_name: string | null
  found: boolean
}

// Each write is a single statement, atomic without an explicit transaction: data-modifying CTEs
// write the resource and bring the owner row up to date together. Named, so that every pooled
// connection prepares it once.
const CREATE = {
  name: 'mrmat_resource_v1_create',
  text: `WITH o AS (
      INSERT INTO owners (subject, name) VALUES ($1, $2)
      ON CONFLICT (subject) DO UPDATE SET name = excluded.name
      RETURNING id, subject, name),
    r AS (INSERT INTO resources (owner_id, name) SELECT o.id, $3 FROM o RETURNING id, name)
    SELECT r.id, r.name, o.id AS owner_id, o.subject AS owner_subject, o.name AS owner_name, true AS found
    FROM r, o`,
}

// Rename and delete touch the owner only when the resource is the caller's, so a refusal writes
// nothing. The EXISTS sees the table as it was before the statement, and so tells "no such
// resource" (404) from "someone else's" (403) when nothing was written. They lock the caller's
// owner row (FOR UPDATE) before the resource's, as a create does with its upsert: locked the other
// way round, a delete holding its row and waiting for the owner deadlocked with a create holding
// the owner and waiting, on the unique (owner, name) index, for that delete (a 500).
const CALLERS_OWNER = '(SELECT id FROM owners WHERE subject = $1 FOR UPDATE)'
const RENAME = {
  name: 'mrmat_resource_v1_rename',
  text: `WITH u AS (
      UPDATE resources SET name = $4
      WHERE id = $3 AND owner_id = ${CALLERS_OWNER}
      RETURNING id, name, owner_id),
    o AS (UPDATE owners SET name = $2 WHERE id = (SELECT owner_id FROM u) RETURNING id, subject, name)
    SELECT u.id, u.name, o.id AS owner_id, o.subject AS owner_subject, o.name AS owner_name,
      EXISTS (SELECT 1 FROM resources WHERE id = $3) AS found
    FROM (SELECT 1) AS one LEFT JOIN u ON true LEFT JOIN o ON true`,
}

const REMOVE = {
  name: 'mrmat_resource_v1_remove',
  text: `WITH d AS (
      DELETE FROM resources WHERE id = $3 AND owner_id = ${CALLERS_OWNER}
      RETURNING owner_id),
    o AS (UPDATE owners SET name = $2 WHERE id = (SELECT owner_id FROM d))
    SELECT (SELECT count(*) FROM d)::int AS deleted, EXISTS (SELECT 1 FROM resources WHERE id = $3) AS found`,
}

function toResource(row: WrittenRow): Resource {
  const { id, name, owner_id: ownerId, owner_subject: subject, owner_name: ownerName } = row
  if (id === null || name === null || ownerId === null || subject === null || ownerName === null) {
    throw new Error('the statement returned no resource')
  }
  return { id, name, owner: { id: ownerId, subject, name: ownerName } }
}

export function postgresResources(database: PostgresDatabase): ResourceRepository {
  const { orm, pool } = database
  const columns = {
    id: resources.id,
    name: resources.name,
    owner: { id: owners.id, subject: owners.subject, name: owners.name },
  }
  const joined = () => orm.select(columns).from(resources).innerJoin(owners, eq(owners.id, resources.ownerId))
  // The reads on every request's path, as on SQLite: drizzle writes their SQL, pg runs it (named: each pooled
  // connection prepares it once) and returns flat rows that are made into resources here. drizzle's prepared query
  // wraps each run in three async functions and maps the nested owner field by field: about 3 µs of the server's CPU
  // a get more (the built CLI, eight pairs of processes). The columns are those of `columns`, in its order; the
  // placeholders are numbered in the order they appear.
  const flat = (name: string, query: { toSQL(): { sql: string } }) => {
    const text = query.toSQL().sql
    return async (...values: unknown[]): Promise<ResourceRow[]> =>
      (await pool.query<ResourceRow>({ name, text, values, rowMode: 'array' })).rows
  }
  // The gets of one moment are one statement of all their ids (batchedLookup). Traced, that statement is a span of the
  // request that came first.
  const getMany = flat('mrmat_resource_v1_get_many',
    joined().where(sql`${resources.id} = ANY(${sql.placeholder('ids')})`))
  const getOne = batchedLookup(async (ids: number[]) => getMany(ids), (row) => row[0])
  const listPage = flat('mrmat_resource_v1_list', joined()
    .where(gt(resources.id, sql.placeholder('after')))
    .orderBy(asc(resources.id))
    .limit(sql.placeholder('limit')))

  async function write(statement: { name: string, text: string }, values: unknown[]): Promise<WrittenRow | undefined> {
    try {
      return (await pool.query<WrittenRow>({ ...statement, values })).rows[0]
    } catch (error) {
      throw nameClash(error)
    }
  }

  return {
    async list(after, limit) {
      return (await listPage(after, limit)).map(resourceOf)
    },
    async get(id) {
      const row = await getOne(id)
      return row === undefined ? undefined : resourceOf(row)
    },
    async create(caller: Caller, name: string) {
      const row = await write(CREATE, [caller.subject, caller.name, name])
      if (row === undefined) throw new Error('the resource insert returned no row')
      return toResource(row)
    },
    async rename(caller, id, name) {
      const row = await write(RENAME, [caller.subject, caller.name, id, name])
      if (row === undefined) throw new Error('the rename statement returned no row')
      if (row.id !== null) return toResource(row)
      return row.found ? 'forbidden' : 'not-found'
    },
    async remove(caller, id) {
      const row = await pool.query<{ deleted: number, found: boolean }>({
        ...REMOVE,
        values: [caller.subject, caller.name, id],
      })
      const result = row.rows[0]
      if (result !== undefined && result.deleted > 0) return 'deleted'
      return result?.found === true ? 'forbidden' : 'not-found'
    },
  }
}
