import { codedError } from '#src/lib/errors.js'
import type { Resource } from './schemas.js'

/** Who writes: the owner row is created from it on first use, and its name kept current. */
export interface Caller {
  subject: string
  name: string
}

/** The caller already owns a resource of that name (the database's unique constraint said so): 409. */
export const NameTakenError = codedError('MRMAT_RESOURCE_NAME_TAKEN', { statusCode: 409 })

export type Refusal = 'not-found' | 'forbidden'

/** A row of the joined reads, flat as drivers return it: resource id and name, owner id, subject and name. */
export type ResourceRow = [number, string, number, string, string]

/** The resource of a flat row (drizzle's own mapping of the nested owner doubled the cost of a page). */
export function resourceOf([id, name, ownerId, subject, ownerName]: ResourceRow): Resource {
  return { id, name, owner: { id: ownerId, subject, name: ownerName } }
}

/**
 * Resources and their owners. Reads are one query with the owner joined; each write is atomic, and name clashes are
 * left to the unique constraint so that concurrent requests cannot both win.
 */
export interface ResourceRepository {
  /** Up to `limit` resources with an id above `after`, by id. */
  list(after: number, limit: number): Promise<Resource[]>
  get(id: number): Promise<Resource | undefined>
  create(caller: Caller, name: string): Promise<Resource>
  rename(caller: Caller, id: number, name: string): Promise<Resource | Refusal>
  remove(caller: Caller, id: number): Promise<'deleted' | Refusal>
}

/** The error a write throws when the unique constraint refuses it: NameTakenError for a duplicate, else as it is. */
export function nameClash(error: unknown): unknown {
  for (let e: unknown = error; typeof e === 'object' && e !== null; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code
    // As each driver reports a unique violation, possibly wrapped by drizzle.
    if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === '23505' || code === 'ER_DUP_ENTRY') {
      return new NameTakenError('You already own a resource with this name')
    }
  }
  return error
}
