import type { Test } from 'tap'
import { compiled, distFile } from './build.js'
import { Child, type ChildOptions, type ChildResult } from './process.js'

// The server's CLI as a process, for what only a process shows: exit codes, signals, what reaches stdout and stderr.
// What a command line means (parsing, precedence, validation) is tested in-process with parseCommandLine.

export const CLI_NAME = 'mrmat-ts-api-fastify'
export const USAGE_HINT = `Run '${CLI_NAME} --help' for usage.`
const LISTENING = /"msg":"Server listening at (http:\/\/[^"]+)"/

/** The CLI of the compiled package as a child process, in `cwd` (relative paths and var/instance land there). */
export async function cliProcess(t: Test, args: string[], options: ChildOptions): Promise<Child> {
  await compiled()
  return new Child(t, process.execPath, [distFile('src/cli/main.js'), ...args], options)
}

/** Runs the CLI to its end. */
export async function runCli(t: Test, args: string[], options: ChildOptions): Promise<ChildResult> {
  return (await cliProcess(t, args, options)).waitForExit()
}

/** Starts the server and waits until it says where it listens, e.g. http://127.0.0.1:41234. */
export async function startCli(t: Test, args: string[], options: ChildOptions): Promise<{ cli: Child, url: string }> {
  const cli = await cliProcess(t, args, options)
  const [, url = ''] = await cli.waitForLine(LISTENING)
  return { cli, url }
}

/** The stderr lines, without the empty piece after the final newline. */
export function stderrLines(result: ChildResult): string[] {
  return result.stderr.split('\n').filter((line, i, all) => line !== '' || i < all.length - 1)
}
