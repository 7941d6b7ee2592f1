import createError, { type FastifyError } from '@fastify/error'

/** Exit codes of both CLIs: 0 success, 1 a failure at run time, 2 a mistake in how it was called or configured. */
export const EXIT_RUNTIME = 1
export const EXIT_USAGE = 2

/** An error that says what it is: a code, and the HTTP status or CLI exit code it ends in. */
export interface CodedError extends FastifyError {
  /** The CLI exits with this; unset, a failure at run time (1). */
  readonly exitCode?: number
}

export interface CodedErrorConstructor {
  new (message: string, options?: { cause: unknown }): CodedError
  readonly prototype: CodedError
}

/**
 * A class of coded errors (@fastify/error's createError), thrown where the failure happens with a message written for
 * whoever reads it, and mapped once: by the problem-details handler through `statusCode`, by the CLIs through
 * `exitCode`. No catch-and-rewrap on the way.
 */
export function codedError(
  code: string,
  options: { statusCode?: number, exitCode?: number } = {},
): CodedErrorConstructor {
  const Coded = createError<[string]>(code, '%s', options.statusCode ?? 500)
  if (options.exitCode !== undefined) Object.defineProperty(Coded.prototype, 'exitCode', { value: options.exitCode })
  return Coded
}

/** A configuration value that cannot be used: the CLIs print the message on one line and exit 2. */
export const ConfigError = codedError('MRMAT_CONFIG_INVALID', { exitCode: EXIT_USAGE })

/** A mistake in how a CLI was called: an unknown option, a missing value, a bad choice. */
export const UsageError = codedError('MRMAT_USAGE', { exitCode: EXIT_USAGE })

/** The exit code an error asks for, or undefined for an error nobody expected. */
export function exitCodeOf(error: unknown): number | undefined {
  const code = (error as { exitCode?: unknown } | null)?.exitCode
  return typeof code === 'number' ? code : undefined
}

/**
 * Runs `make` with stack traces off, for errors that are answers to a client (a refused token, say): where they were
 * made tells nobody anything, and capturing it was most of what such a refusal cost. Only what `make` does before it
 * returns is affected; HttpProblem does the same in its constructor, where super() cannot be wrapped.
 */
export function withoutStackTraces<T>(make: () => T): T {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return make()
  } finally {
    Error.stackTraceLimit = limit
  }
}
