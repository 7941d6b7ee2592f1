import type { FastifyRequest } from 'fastify'

/**
 * An absolute URL on this server for `path`, as the client addressed it: scheme and host come from
 * the request (from X-Forwarded-* when trustProxy allows). A Host header that makes no URL gives the
 * path alone, which is still a valid reference.
 */
export function absoluteUrl(request: FastifyRequest, path: string): string {
  try {
    return new URL(path, `${request.protocol}://${request.host}`).toString()
  } catch {
    return path
  }
}
