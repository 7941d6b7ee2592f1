import type { FastifyInstance } from 'fastify'

/** A tag of the OpenAPI document: the operations of one API version, and what that API is. */
export interface ApiTag {
  name: string
  description: string
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The tags the API plugins document; only there when the OpenAPI plugin is registered. */
    openapiTags?: ApiTag[]
  }
}

/**
 * Names an API plugin's tag in the OpenAPI document, with its description, and returns the name for the routes'
 * `tags`. Without the OpenAPI plugin (a host app that documents nothing) only the name is returned.
 */
export function documentTag(fastify: FastifyInstance, tag: ApiTag): string {
  const tags = fastify.openapiTags
  if (tags !== undefined && !tags.some((known) => known.name === tag.name)) tags.push(tag)
  return tag.name
}
