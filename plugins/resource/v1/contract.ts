/**
 * What a client of resource v1 needs to know beyond the OpenAPI document: the scopes it asks its identity provider
 * for, and the bounds of ids and pages. Free of dependencies, so that the client CLI loads no server code with it; the
 * types of the bodies it takes, type-only, from schemas.ts.
 */

export const DEFAULT_READ_SCOPE = 'mrmat-ts-api-fastify-resource-read'
export const DEFAULT_WRITE_SCOPE = 'mrmat-ts-api-fastify-resource-write'

/** PostgreSQL's integer: ids beyond it are a client mistake (400), not a database error. */
export const MAX_RESOURCE_ID = 2147483647

/** The page sizes of a list: `?limit=` from 1 to MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE when left out. */
export const MAX_PAGE_SIZE = 1000
export const DEFAULT_PAGE_SIZE = 100

/** The longest resource name, in characters. */
export const MAX_NAME_LENGTH = 255
