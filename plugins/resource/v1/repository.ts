import type { Database } from '../../../src/db/database.js'
import { postgresResources } from './repository-postgres.js'
import { sqliteResources } from './repository-sqlite.js'
import type { Resource } from './schemas.js'

/** Who writes: the owner row is created from it on first use, and its name kept current. */
export interface Caller {
  subject: string
  name: string
}

/** The caller already owns a resource of that name (the database's unique constraint said so). */
export class NameTakenError extends Error {
  constructor() {
    super('You already own a resource with this name')
  }
}

export type Refusal = 'not-found' | 'forbidden'

/**
 * Resources and their owners. Reads are one query with the owner joined; each write is atomic, and
 * name clashes are left to the unique constraint so that concurrent requests cannot both win.
 */
export interface ResourceRepository {
  /** Up to `limit` resources with an id above `after`, by id. */
  list(after: number, limit: number): Promise<Resource[]>
  get(id: number): Promise<Resource | undefined>
  create(caller: Caller, name: string): Promise<Resource>
  rename(caller: Caller, id: number, name: string): Promise<Resource | Refusal>
  remove(caller: Caller, id: number): Promise<'deleted' | Refusal>
}

export function resourceRepository(database: Database): ResourceRepository {
  return database.dialect === 'sqlite' ? sqliteResources(database) : postgresResources(database)
}

/** Unique violations as each driver reports them, possibly wrapped by drizzle. */
export function isUniqueViolation(error: unknown): boolean {
  for (let e: unknown = error; typeof e === 'object' && e !== null; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code
    if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === '23505') return true
  }
  return false
}
