import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import semver from 'semver'
import t from 'tap'
import { ROOT } from './helpers/build.js'

// What `npm ci` does on a fresh clone: no EBADENGINE warning on any Node.js the package supports, and tap's plugins
// built from the lockfile at install time, so that `npm test` needs no network.

interface Manifest {
  engines: { node: string }
  tap: { plugin: string[] }
  devDependencies: Record<string, string>
  scripts: Record<string, string>
}
interface LockedPackage { version?: string, engines?: { node?: string } | string[], dev?: boolean }

const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Manifest
const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, LockedPackage>
}

t.test('every locked package declares every Node.js the package supports: npm ci warns no EBADENGINE', async (t) => {
  const supported = manifest.engines.node
  // The least version of each supported major, and this machine's.
  const versions = [...new Set(['20.19.0', '22.13.0', '24.0.0', process.versions.node])]
  for (const version of versions) {
    t.ok(semver.satisfies(version, supported), `${version} is within engines.node ${supported}`)
  }
  t.notOk(semver.satisfies('18.20.0', supported), 'Node 18 is not claimed')
  const refused: string[] = []
  for (const [path, entry] of Object.entries(lock.packages)) {
    const wanted = Array.isArray(entry.engines) ? undefined : entry.engines?.node
    if (path === '' || wanted === undefined) continue
    for (const version of versions) {
      if (semver.satisfies(version, wanted)) continue
      refused.push(`${path}@${entry.version ?? '?'} wants ${wanted}, not ${version}`)
    }
  }
  t.same(refused, [], 'no package of the lockfile refuses a supported Node.js (package.json overrides pins them)')
})

t.test('tap\'s plugins are built at install from the lockfile: npm test fetches and installs nothing', async (t) => {
  t.equal(manifest.scripts.prepare, 'node scripts/tap-plugins.mjs', 'npm ci runs the build (prepare)')
  for (const plugin of manifest.tap.plugin.filter((name) => !name.startsWith('!'))) {
    t.match(manifest.devDependencies[plugin], /^\d+\.\d+\.\d+$/, `${plugin} is an exact devDependency`)
    t.ok(lock.packages[`node_modules/${plugin}`], `${plugin} is in the lockfile`)
  }
  // tap installs a plugin it has to fetch into .tap/plugins/node_modules and names it in .tap/plugins/package.json:
  // after a run of the whole suite, only its link to @tapjs/core is there.
  const plugins = join(ROOT, '.tap', 'plugins')
  t.ok(existsSync(join(plugins, 'package.json')), '.tap/plugins was built')
  const pluginManifest = JSON.parse(readFileSync(join(plugins, 'package.json'), 'utf8')) as Record<string, unknown>
  t.same(Object.keys(pluginManifest), ['devDependencies'], 'nothing but the link to @tapjs/core')
  t.same(Object.keys(pluginManifest.devDependencies as object), ['@tapjs/core'])
  const installed = readdirSync(join(plugins, 'node_modules'), { recursive: true }).map(String)
    .filter((name) => name.split('/').length <= 2 && !name.startsWith('.'))
  t.same(installed.sort(), ['@tapjs', '@tapjs/core'], 'no plugin fetched from the registry')
  // The build tap runs with is the one for the configured plugins, so it does not build (and fetch) again.
  t.equal(t.pluginSignature, await configured(), 'tap runs with the build for the plugins package.json names')
})

async function configured(): Promise<string> {
  const { TapConfig } = await import('@tapjs/config')
  const config = await TapConfig.load()
  return config.pluginSignature
}
