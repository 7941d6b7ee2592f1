// Makes V8's code cache of the server's script (dist/cli/server.cjs; see src/cli/code-cache.ts) for the node options
// this process runs with: run by scripts/bundle.mjs as `node [options] scripts/code-cache.mjs dist/cli`.
//
// The script is compiled as the bin compiles it and started as a user starts it (serve, default flags, an empty
// instance), and asked what a first request asks: what V8 has compiled by then, the start and a request's path, is the
// cache. Whatever a start compiles later (another command, an identity provider, PostgreSQL) is compiled then, as
// before.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

const dir = resolve(process.argv[2] ?? 'dist/cli')
const { cacheFile, cacheOf, compileScript, runScript } = await import(pathToFileURL(join(dir, 'code-cache.js')).href)

const port = await new Promise((done, fail) => {
  const probe = createServer().once('error', fail).listen(0, '127.0.0.1', () => {
    const { port: free } = probe.address()
    probe.close(() => done(free))
  })
})
const instance = mkdtempSync(join(tmpdir(), 'mrmat-code-cache-'))
try {
  const script = compileScript(dir, false)
  const { main } = runScript(script, dir, async (specifier) => import(specifier))
  await main(['serve', '--host', '127.0.0.1', '--port', String(port), '--instance-path', instance,
    '--log-level', 'silent'])
  if (process.exitCode !== undefined && process.exitCode !== 0) throw new Error('the server did not start')
  for (const path of ['/healthz/', '/api/greeting/v1/', '/api/greeting/v2/?name=cache', '/api/greeting/v3/']) {
    const response = await fetch(`http://127.0.0.1:${String(port)}${path}`)
    await response.arrayBuffer()
  }
  const file = cacheFile(dir)
  const cache = cacheOf(script, dir)
  writeFileSync(file, cache)
  process.stdout.write(`code-cache: ${(cache.length / 1024 / 1024).toFixed(1)} MB for node ${
    process.execArgv.join(' ') || '(no options)'} -> ${file}\n`)
} finally {
  rmSync(instance, { recursive: true, force: true })
}
// The server still listens: the cache is written, and nothing of it needs closing.
process.exit(0)
