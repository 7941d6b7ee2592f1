import { accessSync, constants } from 'node:fs'
import { resolve } from 'node:path'
import { Type } from '@sinclair/typebox'
import { DEFAULT_READ_SCOPE, DEFAULT_WRITE_SCOPE } from '#plugins/resource/v1/contract.js'
import { ConfigError } from './lib/errors.js'
import type { OptionTable, OptionValues, TableNaming } from './lib/option-table.js'
import { parseTrustProxy } from './lib/trust-proxy.js'
import { TOKEN_TYPE_POLICIES } from './plugins/auth/token-type.js'
import { parseDatabaseUrl } from './plugins/database/url.js'

export const GROUPS = {
  server: 'Server',
  database: 'Database',
  auth: 'Authentication',
  limits: 'Limits',
  shutdown: 'Shutdown',
  logging: 'Logging',
  observability: 'Observability',
  development: 'Development',
} as const

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

/** RFC 6749's scope-token: printable ASCII without space, quote or backslash. */
const SCOPE_TOKEN = '^[\\x21\\x23-\\x5B\\x5D-\\x7E]+$'
const MILLISECONDS = Type.Integer({ minimum: 1, maximum: 3_600_000 })

function readableFile(path: string, where: string): string {
  const absolute = resolve(path)
  try {
    accessSync(absolute, constants.R_OK)
  } catch (error) {
    throw new ConfigError(`cannot read ${where} ${absolute}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`)
  }
  return absolute
}

/**
 * Every option of the server, once. The CLI's flags and --help, the MRMAT_* variables, the --config file's keys, the
 * validation and the types of the configuration (and of buildApp's settings, for entries marked `app`) come from
 * here. Adding an option is an entry here plus the line that uses it.
 */
export const SERVER_OPTIONS = {
  host: {
    group: GROUPS.server,
    schema: Type.String({ minLength: 1 }),
    default: 'localhost',
    description: 'Address to listen on',
  },
  port: {
    group: GROUPS.server,
    schema: Type.Integer({ minimum: 0, maximum: 65535 }),
    default: 8080,
    description: 'Port to listen on (0 picks a free one)',
  },
  instancePath: {
    group: GROUPS.server,
    schema: Type.String({ minLength: 1 }),
    default: 'var/instance',
    description: 'Folder for instance data, created if missing',
    parse: (value: string) => resolve(value),
  },
  workers: {
    group: GROUPS.server,
    schema: Type.Union([Type.Literal('auto'), Type.Integer({ minimum: 1, maximum: 256 })]),
    default: 1,
    expected: 'expected auto or a whole number from 1 to 256',
    description: 'Worker processes sharing the port; auto = one per CPU; 1 = no cluster',
  },
  trustProxy: {
    group: GROUPS.server,
    app: true,
    schema: Type.Union([Type.Boolean(), Type.String()]),
    default: false,
    description: 'Take client address, scheme and host from X-Forwarded-* of these proxies: a comma-separated list '
      + 'of IPs and CIDRs (or loopback, linklocal, uniquelocal); true trusts anyone, so any client can forge them',
    parse: parseTrustProxy,
  },
  swaggerUi: {
    group: GROUPS.server,
    app: true,
    schema: Type.Boolean(),
    default: true,
    description: 'Serve Swagger UI at /docs/, loaded on its first request; /openapi.json is served either way',
  },
  db: {
    group: GROUPS.database,
    schema: Type.String({ minLength: 1 }),
    defaultDescription: 'SQLite file in the instance path',
    description: 'Database URI: sqlite:<path>, a file path, :memory:, postgres://… or mysql://… (mariadb://…)',
    parse: (value: string, where: string) => parseDatabaseUrl(value, process.cwd(), where),
  },
  dbPoolSize: {
    group: GROUPS.database,
    schema: Type.Integer({ minimum: 1, maximum: 1000 }),
    default: 10,
    description: 'Connections in the PostgreSQL or MySQL pool',
  },
  oidcSecrets: {
    group: GROUPS.auth,
    schema: Type.String({ minLength: 1 }),
    description: 'Client-secrets JSON file of the OpenID provider (the seed\'s format)',
    parse: readableFile,
  },
  issuer: {
    group: GROUPS.auth,
    schema: Type.String({ minLength: 1 }),
    defaultDescription: 'web.issuer of --oidc-secrets',
    description: 'OpenID provider issuer URL; tokens\' iss must equal it',
  },
  audience: {
    group: GROUPS.auth,
    schema: Type.String({ minLength: 1 }),
    defaultDescription: 'web.client_id of --oidc-secrets',
    description: 'Audience tokens must carry in aud',
  },
  jwksUri: {
    group: GROUPS.auth,
    schema: Type.String({ minLength: 1 }),
    description: 'Signing keys URL, instead of the jwks_uri of discovery',
  },
  clockTolerance: {
    group: GROUPS.auth,
    schema: Type.Integer({ minimum: 0, maximum: 600 }),
    default: 30,
    description: 'Seconds of clock skew allowed on exp and nbf',
  },
  tokenType: {
    group: GROUPS.auth,
    schema: Type.Union(TOKEN_TYPE_POLICIES.map((policy) => Type.Literal(policy))),
    default: 'compatible',
    description: 'Which JWTs are access tokens: strict = only typ at+jwt (RFC 9068); compatible = also the plain JWTs '
      + 'of Keycloak and Entra ID that carry scopes or roles and no ID-token claims',
  },
  resourceReadScope: {
    group: GROUPS.auth,
    app: true,
    schema: Type.String({ minLength: 1, pattern: SCOPE_TOKEN }),
    default: DEFAULT_READ_SCOPE,
    description: 'Scope resource v1 needs to read',
  },
  resourceWriteScope: {
    group: GROUPS.auth,
    app: true,
    schema: Type.String({ minLength: 1, pattern: SCOPE_TOKEN }),
    default: DEFAULT_WRITE_SCOPE,
    description: 'Scope resource v1 needs to write',
  },
  bodyLimit: {
    group: GROUPS.limits,
    app: true,
    schema: Type.Integer({ minimum: 1, maximum: 1024 ** 3 }),
    default: 1024 * 1024,
    description: 'Largest request body in bytes (413 above)',
  },
  // Longer than the keepalive_timeout nginx and most load balancers keep idle upstream connections (60 s): the proxy
  // must always be the one to close an idle connection, or it may send a request on a socket the server is closing
  // at that moment and turn it into a 502.
  keepAliveTimeout: {
    group: GROUPS.limits,
    app: true,
    schema: MILLISECONDS,
    default: 72_000,
    description: 'Milliseconds an idle connection stays open; keep above the proxy\'s',
  },
  // A request (headers and body, at most --body-limit) that takes longer to arrive is a slow client or a slowloris
  // attack, not a user: close it rather than hold a socket and a buffer for minutes (Node's own default is 300 s).
  requestTimeout: {
    group: GROUPS.limits,
    app: true,
    schema: Type.Integer({ minimum: 0, maximum: 3_600_000 }),
    default: 30_000,
    description: 'Milliseconds a client has to send a whole request (0 = no limit)',
  },
  // Headers are small; a client that has not sent them within 15 s is not going to.
  headersTimeout: {
    group: GROUPS.limits,
    app: true,
    schema: MILLISECONDS,
    default: 15_000,
    description: 'Milliseconds a client has to send the request headers',
  },
  maxEventLoopDelay: {
    group: GROUPS.limits,
    app: true,
    schema: Type.Integer({ minimum: 0 }),
    default: 1000,
    description: 'Answer 503 above this mean event-loop delay in ms (0 = off)',
  },
  maxHeapUsed: {
    group: GROUPS.limits,
    app: true,
    schema: Type.Number({ minimum: 0 }),
    default: 0.95,
    description: 'Answer 503 above this V8 heap use: bytes, or up to 1 a ratio of the heap limit (0 = off)',
  },
  maxRss: {
    group: GROUPS.limits,
    app: true,
    schema: Type.Integer({ minimum: 0 }),
    default: 0,
    description: 'Answer 503 above this resident set size in bytes (0 = off)',
  },
  shutdownTimeout: {
    group: GROUPS.shutdown,
    schema: MILLISECONDS,
    default: 10_000,
    description: 'Milliseconds a graceful shutdown may take before exiting 1',
  },
  shutdownDelay: {
    group: GROUPS.shutdown,
    schema: Type.Integer({ minimum: 0, maximum: 3_600_000 }),
    default: 0,
    description: 'Milliseconds readiness fails while still serving, before the listener closes',
  },
  logLevel: {
    group: GROUPS.logging,
    schema: Type.Union(LOG_LEVELS.map((level) => Type.Literal(level))),
    defaultDescription: 'info, debug with -d',
    description: 'Least severe level logged: fatal, error, warn, info, debug, trace or silent',
  },
  debug: { group: GROUPS.logging, alias: 'd', schema: Type.Boolean(), default: false, 
    description: 'Log at debug level (as --log-level debug)' },
  logFormat: {
    group: GROUPS.logging,
    schema: Type.Union([Type.Literal('json'), Type.Literal('pretty')]),
    defaultDescription: 'pretty on a terminal, else json',
    description: 'json: a JSON object a line (pipes, files, containers); pretty: a readable line an event',
  },
  accessLog: {
    group: GROUPS.logging,
    app: true,
    schema: Type.Boolean(),
    default: true,
    description: 'One line a request: method, path, status, duration, request id '
      + '(--no-access-log: none)',
  },
  // Off by default: where metrics may be read is the operator's decision (they show routes, load and failures), and a
  // fixed default port would collide between two servers on one host.
  metrics: {
    group: GROUPS.observability,
    app: true,
    schema: Type.Boolean(),
    default: false,
    description: 'Prometheus metrics at /metrics: on the public port, or on --metrics-port when given',
  },
  metricsPort: {
    group: GROUPS.observability,
    schema: Type.Integer({ minimum: 0, maximum: 65535 }),
    defaultDescription: 'the public port',
    description: 'Serve /metrics on this port of --metrics-host instead, never on the public one (needs --metrics; '
      + 'required with --workers, whose primary answers for every worker)',
  },
  metricsHost: {
    group: GROUPS.observability,
    schema: Type.String({ minLength: 1 }),
    default: '127.0.0.1',
    description: 'Address the --metrics-port listens on',
  },
  devIssuerPort: {
    group: GROUPS.development,
    schema: Type.Integer({ minimum: 0, maximum: 65535 }),
    default: 8081,
    description: 'dev only: port of the development identity provider on 127.0.0.1 (0 picks a free one; keep it '
      + 'fixed for tokens and logins to survive a restart)',
  },
} satisfies OptionTable

export const SERVER_NAMING: TableNaming = { envPrefix: 'MRMAT_', fileCase: 'kebab' }

/** The server's options once resolved: flags, variables, config file and defaults merged, checked and parsed. */
export type ServerOptions = OptionValues<typeof SERVER_OPTIONS>
