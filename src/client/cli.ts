#!/usr/bin/env node
import { realpathSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import yargs, { type Argv } from 'yargs'
import { hideBin } from 'yargs/helpers'
import { packageVersion } from '../lib/package-info.js'
import { Api, type GreetingVersion, type Resource } from './api.js'
import { MAX_PAGE_SIZE, MAX_RESOURCE_ID } from '#plugins/resource/v1/contract.js'
import { EXIT_USAGE, exitCodeOf } from '../lib/errors.js'
import { printable } from '../lib/text.js'
import {
  CLIENT_NAME,
  clientYargsOptions,
  CONFIG_ENV,
  displayUrl,
  requireSettings,
  resolveSettings,
  seconds,
  type ClientSettings,
} from './config.js'
import { ApiError, AuthError, EXIT_API, EXIT_OK, UsageError } from './errors.js'
import type { HttpOptions } from './http.js'
import { Output, table, type Io } from './output.js'
import {
  accessToken, describeLogin, fittingLogins, loginStatus, loginWithClientCredentials, loginWithDevice, logout,
  rememberedLogin, type Session,
} from './session.js'

const POLL_ENV = 'MRMAT_CLIENT_POLL_INTERVAL'

/** What the error report needs to know of the settings, once they are resolved. */
interface RunState {
  debug: boolean
  json: boolean
}

interface Context {
  settings: ClientSettings
  output: Output
  http: HttpOptions
  io: Io
}

function context(argv: Record<string, unknown>, io: Io, state: RunState): Context {
  const settings = resolveSettings(argv, io.env)
  state.debug = settings.debug
  state.json = settings.json
  const output = new Output(io, settings)
  return { settings, output, io, http: { timeoutMs: settings.timeout * 1000, debug: (line) => { output.debug(line) } } }
}

function session(ctx: Context): Session {
  const settings = requireSettings(rememberedLogin(ctx.settings, ctx.io.env), ['server', 'discoveryUrl', 'clientId'])
  return { settings, output: ctx.output, env: ctx.io.env, http: ctx.http }
}

/**
 * The API client; the token is looked for only when a route needs one, so greeting v1 works logged out and unconfigured
 * for OIDC.
 */
function api(ctx: Context): Api {
  const { server } = requireSettings(rememberedLogin(ctx.settings, ctx.io.env), ['server'])
  return new Api(server, ctx.http, async () => accessToken(session({ ...ctx, settings: { ...ctx.settings, server } })))
}

function resourceId(value: unknown): number {
  const text = String(value)
  const id = /^\d+$/.test(text) ? Number(text) : NaN
  if (!(id >= 1 && id <= MAX_RESOURCE_ID)) {
    throw new UsageError(`a resource id is a whole number from 1 to ${MAX_RESOURCE_ID}, not ${JSON.stringify(text)}`)
  }
  return id
}

function resourceName(value: unknown): string {
  const name = String(value)
  if (name.trim() === '') throw new UsageError('a resource name must not be blank')
  return name
}

function integer(value: unknown, flag: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new UsageError(`${flag} must be a whole number from ${min} to ${max}`)
  }
  return value
}

function resourceRows(resources: Resource[]): string {
  // Names are other people's text: shown with any control or bidirectional character escaped.
  const rows = resources.map((r) => [String(r.id), printable(r.name), printable(r.owner.name)])
  return table(['ID', 'NAME', 'OWNER'], rows)
}

function cli(args: string[], io: Io, state: RunState): Argv {
  const run = (work: (ctx: Context, argv: Record<string, unknown>) => Promise<void>) =>
    async (argv: Record<string, unknown>) => { await work(context(argv, io, state), argv) }

  return yargs(args)
    .scriptName(CLIENT_NAME)
    .usage(`$0 <command> [options]

The client of the MrMat REST API. Settings come from flags, else MRMAT_CLIENT_* variables (MRMAT_CLIENT_ID,
MRMAT_CLIENT_SECRET, MRMAT_CLIENT_DISCOVERY_URL, MRMAT_CLIENT_SERVER, ...), else the JSON config file
(keys client_id, client_secret, discovery_url, server, read_scope, write_scope, timeout).`)
    .epilog(
      'Exit codes: 0 success, 1 API error or server/provider unreachable, 2 bad usage or configuration, '
      + '3 authentication failure.',
    )
    .parserConfiguration({ 'duplicate-arguments-array': false })
    .options({
      config: {
        type: 'string',
        description: `JSON config file (also ${CONFIG_ENV})`,
        defaultDescription: '$XDG_CONFIG_HOME/mrmat-ts-api-fastify/client.json, '
          + 'XDG_CONFIG_HOME defaulting to ~/.config',
      },
      ...clientYargsOptions(),
    })
    .command('login', 'Log in: the device flow in a browser, or --client-credentials for automation', (y) => y.options({
      'client-credentials': {
        type: 'boolean',
        default: false,
        description: 'Log in as the client itself (needs the client secret)',
      },
      'poll-interval': {
        type: 'number',
        description: `Seconds between polls for the sign-in, instead of the provider's interval; `
          + `a slow_down then adds at most this much (also ${POLL_ENV})`,
        defaultDescription: 'the provider\'s interval, else 5',
      },
    }), run(async (ctx, argv) => {
      if (argv['client-credentials'] === true) {
        requireSettings(ctx.settings, ['clientSecret'])
        await loginWithClientCredentials(session(ctx))
        return
      }
      const flag = argv['poll-interval']
      const variable = ctx.io.env[POLL_ENV]
      const given = flag !== undefined
        ? { value: flag, where: '--poll-interval' }
        : variable !== undefined && variable !== '' ? { value: variable, where: POLL_ENV } : undefined
      const pollInterval = given === undefined ? undefined : seconds(given.value, given.where, { min: 0.01, max: 600 })
      await loginWithDevice(session(ctx), { pollInterval })
    }))
    .command(
      'logout',
      'Forget the cached tokens (and revoke the refresh token at the provider)',
      {},
      run(async (ctx) => {
        await logout(session(ctx))
      }),
    )
    .command(
      ['status', 'whoami'],
      'Who is logged in to which server, with which scopes, until when (exit 3 when nobody is)',
      {},
      run(async (ctx) => {
        // A cache that cannot be used (damaged, readable by others) is said, not taken for no login at all.
        const unusable: string[] = []
        const logins = fittingLogins(ctx.settings, ctx.io.env, unusable).map((cached) => loginStatus(cached))
        if (logins.length === 0) {
          const where = ctx.settings.server === undefined ? '' : ` to ${displayUrl(ctx.settings.server)}`
          throw new AuthError(`not logged in${where}: `
            + (unusable.length === 0 ? `run '${CLIENT_NAME} login' first` : unusable.join('; ')))
        }
        ctx.output.result(logins.map(describeLogin).join('\n'), { logins })
      }),
    )
    // Not [version]: yargs would take that for --version.
    .command('greeting [api-version]', 'Greet: v1 the World, v2 --name, v3 the logged-in caller', (y) => y
      .positional('api-version', {
        choices: ['v1', 'v2', 'v3'] as const,
        default: 'v1' as const,
        description: 'The greeting API version',
      })
      .options({ name: { type: 'string', description: 'Whom greeting v2 greets' } }), run(async (ctx, argv) => {
      const version = argv['api-version'] as GreetingVersion
      const name = argv.name as string | undefined
      if (name !== undefined && version !== 'v2') throw new UsageError('--name is for greeting v2 only')
      const greeting = await api(ctx).greeting(version, name)
      ctx.output.result(printable(greeting.message), greeting)
    }))
    .command('resource', 'Manage resources: list, get, create, rename, delete', (y) => y
      .command('list', 'List every resource (following next), or one page with --limit/--after', (y) => y.options({
        limit: { type: 'number', description: `One page of at most this many (1–${MAX_PAGE_SIZE}) instead of all` },
        after: { type: 'number', description: 'With --limit: only resources with an id above this' },
      }), run(async (ctx, argv) => {
        const limit = integer(argv.limit, '--limit', 1, MAX_PAGE_SIZE)
        const after = integer(argv.after, '--after', 0, MAX_RESOURCE_ID)
        if (after !== undefined && limit === undefined) {
          throw new UsageError('--after needs --limit: without it every resource is listed')
        }
        const client = api(ctx)
        if (limit === undefined) {
          const resources = await client.listAll()
          ctx.output.result(
            resources.length === 0 ? 'No resources.' : resourceRows(resources),
            { resources, next: null },
          )
          return
        }
        const page = await client.listPage(limit, after)
        ctx.output.result(page.resources.length === 0 ? 'No resources.' : resourceRows(page.resources), page)
        const last = page.resources.at(-1)
        if (page.next !== null && last !== undefined) {
          ctx.output.note(`More: ${CLIENT_NAME} resource list --limit ${limit} --after ${last.id}`)
        }
      }))
      .command('get <id>', 'Show one resource', (y) => y
        .positional('id', { type: 'string', description: 'The resource id' }), run(async (ctx, argv) => {
        const resource = await api(ctx).get(resourceId(argv.id))
        ctx.output.result(resourceRows([resource]), resource)
      }))
      .command('create <name>', 'Create a resource you own', (y) => y
        .positional('name', { type: 'string' }), run(async (ctx, argv) => {
        const resource = await api(ctx).create(resourceName(argv.name))
        ctx.output.result(`Created resource ${resource.id}: ${printable(resource.name)}`, resource)
      }))
      .command('rename <id> <name>', 'Rename a resource you own', (y) => y
        .positional('id', { type: 'string' }).positional('name', { type: 'string' }), run(async (ctx, argv) => {
        const resource = await api(ctx).rename(resourceId(argv.id), resourceName(argv.name))
        ctx.output.result(`Renamed resource ${resource.id}: ${printable(resource.name)}`, resource)
      }))
      .command('delete <id>', 'Delete a resource you own', (y) => y
        .positional('id', { type: 'string' }), run(async (ctx, argv) => {
        const id = resourceId(argv.id)
        await api(ctx).remove(id)
        ctx.output.result(`Deleted resource ${id}`, { id, deleted: true })
      }))
      .demandCommand(1, 'name a resource command: list, get, create, rename or delete'))
    .command('health', 'Ask the server whether it is up (/healthz/)', {}, run(async (ctx) => {
      const health = await api(ctx).health()
      ctx.output.result(printable(health.status), health)
    }))
    .demandCommand(1, 'name a command: login, logout, status, greeting, resource or health')
    .version(packageVersion)
    .alias('h', 'help')
    .strict()
    .wrap(Math.min(110, process.stdout.columns || 110))
    .fail((message: string, error: Error | null | undefined) => {
      throw error ?? new UsageError(message)
    })
}

/** Reports a failure as one line on stderr (the problem body too, with --json) and returns the exit code. */
function report(error: unknown, io: Io, state: RunState): number {
  const err = error instanceof Error ? error : new Error(String(error))
  // yargs rethrows its own complaints (an unknown option, a missing argument) as YError.
  const code = exitCodeOf(err) ?? (err.name === 'YError' ? EXIT_USAGE : undefined)
  // yargs' own messages can span lines (invalid choices); the report is one line.
  io.stderr.write(`${CLIENT_NAME}: ${err.message.replace(/\s*\n\s*/g, ' ')}\n`)
  if (err instanceof ApiError) {
    for (const field of err.problem?.errors ?? []) {
      io.stderr.write(`  ${field.in ?? ''} ${field.name ?? ''}: ${field.detail ?? ''}\n`)
    }
    if (state.json && err.problem !== undefined) io.stdout.write(`${JSON.stringify(err.problem)}\n`)
  }
  if (code === EXIT_USAGE) io.stderr.write(`Run '${CLIENT_NAME} --help' for usage.\n`)
  if (code !== undefined) return code
  if (state.debug) io.stderr.write(`${err.stack ?? ''}\n`)
  else io.stderr.write(`Run again with --debug for details.\n`)
  return EXIT_API
}

/** Runs the client; errors are one line on stderr and an exit code, never a stack trace unless --debug. */
export async function run(args: string[], io: Io): Promise<number> {
  const state: RunState = { debug: false, json: false }
  try {
    await cli(args, io, state).parseAsync()
    return EXIT_OK
  } catch (error) {
    return report(error, io, state)
  }
}

export async function main(args: string[]): Promise<void> {
  process.exitCode = await run(args, { stdout: process.stdout, stderr: process.stderr, env: process.env })
}

const invokedDirectly = process.argv[1] !== undefined
  && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href
if (invokedDirectly) await main(hideBin(process.argv))
