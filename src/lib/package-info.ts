import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
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
 * The build's version, which --version and the OpenAPI document show: scripts/stamp-version.mjs writes it
 * beside the compiled module from MRMAT_VERSION at build time. The sources have no such file.
 */
function buildVersion(): string {
  const file = join(dirname(fileURLToPath(import.meta.url)), 'version.json')
  if (!existsSync(file)) return DEV_VERSION
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version
}

export const packageVersion = buildVersion()

export function migrationsFolder(dialect: 'sqlite' | 'postgres'): string {
  return join(packageRoot, 'drizzle', dialect)
}
