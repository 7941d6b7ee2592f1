import cluster from 'node:cluster'
import yargs from 'yargs'
import { hideBin } from 'yargs/helpers'
import { EXIT_RUNTIME, EXIT_USAGE, exitCodeOf, UsageError } from '../lib/errors.js'
import { yargsOptions, type OptionSources } from '../lib/option-table.js'
import { PACKAGE_NAME as NAME, packageVersion } from '../lib/package-info.js'
import { SERVER_OPTIONS } from '../options.js'
import { resolveServerConfig, type ServerConfig } from './config.js'

export const CONFIG_ENV = 'MRMAT_CONFIG'

/** What a command line asks for, checked: a command and its configuration, or text to print (--help, --version). */
export type Invocation =
  | { command: 'serve' | 'migrate' | 'dev' | 'token', config: ServerConfig }
  | { command: 'openapi' }
  | { output: string }

/** Where each option's value comes from: the flags yargs parsed, the variables, and the --config file. */
function sources(argv: Record<string, unknown>, env: NodeJS.ProcessEnv): OptionSources {
  const flag = typeof argv.config === 'string' ? argv.config : undefined
  return { flags: argv, env, configFile: flag ?? (env[CONFIG_ENV] === '' ? undefined : env[CONFIG_ENV]) }
}

const USAGE = `$0 [command] [options]

The MrMat REST API server. Every option can also be set by a variable MRMAT_<OPTION> (MRMAT_PORT,
MRMAT_INSTANCE_PATH, ...) or a key of a JSON --config file; a flag beats a variable, a variable beats the file.`

/**
 * Parses and checks a command line without running anything: flags through yargs (strict: an unknown option is a
 * usage error), then every option from its source (see resolveServerConfig).
 */
export async function parseCommandLine(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Invocation> {
  let invocation: Invocation | undefined
  const command = (name: 'serve' | 'migrate' | 'dev' | 'token') => async (argv: Record<string, unknown>) => {
    const config = resolveServerConfig(sources(argv, env))
    if (name === 'dev') (await import('./dev.js')).checkDevConfig(config)
    invocation = { command: name, config }
  }
  const parser = yargs()
    .scriptName(NAME)
    .usage(USAGE)
    .parserConfiguration({ 'duplicate-arguments-array': false })
    .option('config', {
      type: 'string',
      description: `JSON file with option values (also ${CONFIG_ENV})`,
      group: 'Server:',
    })
    .options(yargsOptions(SERVER_OPTIONS))
    .command(['serve', '$0'], 'Apply migrations and serve the API (default)', {}, command('serve'))
    .command('migrate', 'Apply database migrations and exit', {}, command('migrate'))
    .command('dev', 'Serve with a development identity provider on loopback, for trying every route locally '
      + '(never in production)', {}, command('dev'))
    .command('token', 'Print an access token from the identity provider of a running dev, for curl', {},
      command('token'))
    .command('openapi', 'Print the OpenAPI document as JSON and exit', {}, () => {
      invocation = { command: 'openapi' }
    })
    .version(packageVersion)
    .alias('h', 'help')
    .strict()
    .wrap(Math.min(120, process.stdout.columns || 120))
    .fail((message: string, error: Error | null | undefined) => {
      throw error ?? new UsageError(message)
    })
  let output = ''
  await parser.parseAsync(args, {}, (_error, _argv, text) => { output = text })
  return invocation ?? { output }
}

async function printOpenApi(): Promise<void> {
  const { buildApp } = await import('../app.js')
  const { openSqlite } = await import('../plugins/database/sqlite.js')
  // An in-memory database mounts every API, so the document lists them all.
  const app = await buildApp({ database: openSqlite(':memory:'), migrate: true, swaggerUi: false })
  await app.ready()
  process.stdout.write(`${JSON.stringify(app.swagger(), null, 2)}\n`)
  await app.close()
}

/**
 * A reader that stops early (`openapi | head`) closes the pipe, and the next write fails with EPIPE: what is left to
 * print is dropped, as other tools drop it, instead of the process dying of an unhandled 'error' with a stack trace.
 */
function dropOutputOnClosedPipe(): void {
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') return
    process.stderr.write(`${NAME}: cannot write the output: ${error.message}\n`)
    process.exitCode = EXIT_RUNTIME
  })
}

/** Runs the CLI; errors are one line on stderr and an exit code, never a stack trace. */
export async function main(args: string[]): Promise<void> {
  try {
    const invocation = await parseCommandLine(args)
    // The commands that print and exit; the server's stdout is its log.
    if ('output' in invocation || invocation.command === 'openapi' || invocation.command === 'token') {
      dropOutputOnClosedPipe()
    }
    if ('output' in invocation) {
      if (invocation.output !== '') process.stdout.write(`${invocation.output}\n`)
      return
    }
    if (invocation.command === 'openapi') await printOpenApi()
    else if (invocation.command === 'dev') await (await import('./dev-server.js')).serveDev(invocation.config)
    else if (invocation.command === 'token') await (await import('./dev.js')).printToken(invocation.config)
    else {
      // Loaded only to run: --help, --version and a refused option need none of the server.
      const { migrateOnly, serve } = await import('./serve.js')
      await (invocation.command === 'serve' ? serve : migrateOnly)(invocation.config)
    }
  } catch (error) {
    const err = error as Error
    // yargs reports what it refuses itself (a missing value, a bad choice) as a YError.
    const code = exitCodeOf(err) ?? (err.name === 'YError' ? EXIT_USAGE : undefined)
    process.stderr.write(`${NAME}: ${err.message}\n`)
    if (code === EXIT_USAGE) process.stderr.write(`Run '${NAME} --help' for usage.\n`)
    if (code === undefined && process.env.MRMAT_DEBUG !== undefined) process.stderr.write(`${err.stack ?? ''}\n`)
    process.exitCode = code ?? EXIT_RUNTIME
    // A cluster worker's channel to the primary would keep it alive, failed, forever.
    if (cluster.isWorker) process.exit()
  }
}

/** The command line as the bin runs it (see main.ts): the process's own arguments. */
export async function run(): Promise<void> {
  await main(hideBin(process.argv))
}
