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

const packageJson = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }
export const packageVersion = packageJson.version

export function migrationsFolder(dialect: 'sqlite' | 'postgres' | 'mysql'): string {
  return join(packageRoot, 'drizzle', dialect)
}
