import { resolve } from 'node:path'
import { codedError, EXIT_USAGE } from '../../lib/errors.js'

export type DatabaseLocation =
  | { dialect: 'sqlite', file: string }
  | { dialect: 'postgres', url: string }
  | { dialect: 'mysql', url: string }

export const SQLITE_MEMORY = ':memory:'

/** A --db value that names no database this server can open. */
export const DatabaseUrlError = codedError('MRMAT_DATABASE_URL_INVALID', { exitCode: EXIT_USAGE })

/**
 * Parses --db: `:memory:`, `sqlite::memory:`, `sqlite:<path>`, SQLAlchemy's `sqlite:///<path>` (so the
 * seed's URIs keep working), a bare file path, `postgres://` / `postgresql://`, or `mysql://` / `mariadb://`.
 */
export function parseDatabaseUrl(value: string, cwd = process.cwd(), where = 'database URI'): DatabaseLocation {
  const invalid = (reason: string) => new DatabaseUrlError(`invalid ${where}: ${reason}`)
  const text = value.trim()
  if (text === '') throw invalid('the database URI is empty')
  if (text === SQLITE_MEMORY) return { dialect: 'sqlite', file: SQLITE_MEMORY }
  // A scheme needs two or more letters, so that a Windows drive letter reads as a path.
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]+):/.exec(text)?.[1]?.toLowerCase()
  if (scheme === undefined) return { dialect: 'sqlite', file: resolve(cwd, text) }
  if (scheme === 'postgres' || scheme === 'postgresql') {
    let url: URL
    try {
      url = new URL(text)
    } catch {
      throw invalid('the PostgreSQL URI is malformed')
    }
    if (url.hostname === '' && !url.searchParams.has('host')) {
      throw invalid('the PostgreSQL URI names no host')
    }
    return { dialect: 'postgres', url: text }
  }
  if (scheme === 'mysql' || scheme === 'mariadb') {
    let url: URL
    try {
      url = new URL(text)
    } catch {
      throw invalid('the MySQL URI is malformed')
    }
    if (url.hostname === '') throw invalid('the MySQL URI names no host')
    if (url.pathname.length <= 1 || url.pathname.slice(1).includes('/')) {
      throw invalid('the MySQL URI names no database: use mysql://user:password@host:3306/database')
    }
    // Driver options in the query would bypass what openMysql sets on purpose (strict mode, utf8mb4, one statement a
    // query): refused rather than silently ignored.
    if (url.search !== '') throw invalid('the MySQL URI takes no query parameters')
    return { dialect: 'mysql', url: text }
  }
  if (scheme === 'sqlite') {
    let rest = text.slice('sqlite:'.length)
    if (rest.startsWith('///')) rest = rest.slice(3)
    else if (rest.startsWith('//')) throw invalid('a sqlite URI takes no host: use sqlite:<path> or sqlite:///<path>')
    if (rest === SQLITE_MEMORY) return { dialect: 'sqlite', file: SQLITE_MEMORY }
    if (rest === '') throw invalid('the sqlite URI names no file')
    return { dialect: 'sqlite', file: resolve(cwd, rest) }
  }
  throw invalid(`unsupported database URI scheme '${scheme}:'; use sqlite:<path>, :memory:, postgres://… or mysql://…`)
}

/** The location as safe to log: never the password. */
export function describeDatabase(location: DatabaseLocation): string {
  if (location.dialect === 'sqlite') return `sqlite:${location.file}`
  const url = new URL(location.url)
  if (url.password !== '') url.password = '***'
  // password, sslpassword and anything else that names a secret.
  url.searchParams.forEach((_value, key) => {
    if (/password|secret/i.test(key)) url.searchParams.set(key, '***')
  })
  return url.toString()
}
