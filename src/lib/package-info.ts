import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The package's name, which is also the server's command and its logger's name. */
export const PACKAGE_NAME = 'mrmat-ts-api-fastify'

/**
 * The folder holding this package's package.json. Sources run from src/ in development and from
 * dist/src/ when built or installed, so walk up rather than assume a depth.
 */
function findPackageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const manifest = join(dir, 'package.json')
    if (existsSync(manifest)
      && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === PACKAGE_NAME) {
      return dir
    }
    const parent = dirname(dir)
    if (parent === dir) {
      throw new Error(`cannot find the ${PACKAGE_NAME} package root above ${fileURLToPath(import.meta.url)}`)
    }
    dir = parent
  }
}

export const packageRoot = findPackageRoot()

/** The version of a build nobody stamped, as the seed's: sources run directly, or a build without MRMAT_VERSION. */
export const DEV_VERSION = '0.0.0.dev0'

/**
 * The build's version, which --version and the OpenAPI document show: scripts/stamp-version.mjs writes it from
 * MRMAT_VERSION at build time into dist/src/lib/version.json. Found from the package root rather than beside this
 * module, which a bundler may inline anywhere under dist/; the sources, run directly, are a development build.
 */
function buildVersion(): string {
  const dist = join(packageRoot, 'dist')
  if (!fileURLToPath(import.meta.url).startsWith(dist + sep)) return DEV_VERSION
  const file = join(dist, 'src', 'lib', 'version.json')
  if (!existsSync(file)) return DEV_VERSION
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version
}

export const packageVersion = buildVersion()

export function migrationsFolder(dialect: 'sqlite' | 'postgres' | 'mysql'): string {
  return join(packageRoot, 'drizzle', dialect)
}
