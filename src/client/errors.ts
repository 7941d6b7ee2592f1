import { EXIT_RUNTIME, EXIT_USAGE } from '../lib/errors.js'
import type { InvalidParam, Problem } from '../lib/problem.js'
import { UNSAFE_CHARACTERS } from '../lib/text.js'

/** Exit codes of the client CLI: the README's table. */
export const EXIT_OK = 0
export const EXIT_API = EXIT_RUNTIME
export { EXIT_USAGE }
export const EXIT_AUTH = 3

/** A failure the CLI reports as one line and an exit code; its message is written for the user. */
export class ClientError extends Error {
  constructor(message: string, readonly exitCode: number = EXIT_API) {
    super(message)
  }
}

/** A mistake in how the client was called or configured: exit 2 with a usage hint. */
export class UsageError extends ClientError {
  constructor(message: string) {
    super(message, EXIT_USAGE)
  }
}

/** Not logged in, a token nobody accepts any more, a refused or expired sign-in: exit 3. */
export class AuthError extends ClientError {
  constructor(message: string) {
    super(message, EXIT_AUTH)
  }
}

/**
 * The server or the identity provider could not be reached, or answered nonsense: exit 1 (3 when it stops a sign-in).
 */
export class NetworkError extends ClientError {}

/** A problem body as a server sent it: the API's Problem, but nothing in it can be relied on. */
export type ProblemBody = Partial<Omit<Problem, 'errors'>> & { errors?: Partial<InvalidParam>[] }

/** The API answered with an error; its RFC 9457 problem body, when it sent one, is shown to the user. */
export class ApiError extends ClientError {
  constructor(message: string, readonly status: number, readonly problem: ProblemBody | undefined) {
    super(message, EXIT_API)
  }
}

const UNSAFE = new RegExp(`[${UNSAFE_CHARACTERS}]+`, 'gu')

/**
 * One line of text from someone else (a provider's error_description): no control characters or bidirectional
 * marks, bounded.
 */
export function oneLine(text: string, max = 300): string {
  const flat = text.replace(UNSAFE, ' ').trim()
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat
}
