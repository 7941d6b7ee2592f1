#!/usr/bin/env node
// Fails when the drizzle schema and the committed migrations disagree: drizzle-kit generates into a
// copy of drizzle/<dialect>, and any file it adds or changes there is a migration nobody committed.
import { execFileSync } from 'node:child_process'
import { cpSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'

const dialects = [
  { dialect: 'sqlite', kitDialect: 'sqlite', schema: 'src/plugins/database/schema/sqlite.ts' },
  { dialect: 'postgres', kitDialect: 'postgresql', schema: 'src/plugins/database/schema/postgres.ts' },
  { dialect: 'mysql', kitDialect: 'mysql', schema: 'src/plugins/database/schema/mysql.ts' },
]

function files(dir) {
  return readdirSync(dir, { recursive: true })
    .map((name) => join(dir, name))
    .filter((path) => statSync(path).isFile())
    .map((path) => relative(dir, path))
    .sort()
}

let drift = false
for (const { dialect, kitDialect, schema } of dialects) {
  const committed = join('drizzle', dialect)
  // drizzle-kit takes --out relative to the project (it prefixes './'), and exits 0 on some errors.
  const scratch = join('node_modules', '.cache', 'drizzle-check', dialect)
  rmSync(scratch, { recursive: true, force: true })
  try {
    cpSync(committed, scratch, { recursive: true })
    const run = (args) => execFileSync('npx', ['drizzle-kit', ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const output = run(['check', '--dialect', kitDialect, '--out', committed])
      + run(['generate', '--dialect', kitDialect, '--schema', schema, '--out', scratch])
    if (/error/i.test(output)) throw new Error(`drizzle-kit failed for ${dialect}:\n${output}`)
    const before = files(committed)
    const after = files(scratch)
    const changed = after.filter((name) => !before.includes(name)
      || !readFileSync(join(committed, name)).equals(readFileSync(join(scratch, name))))
    if (changed.length > 0) {
      drift = true
      console.error(
        `drizzle/${dialect}: the schema has changes without a committed migration (${changed.join(', ')}); `
        + 'run npm run db:generate',
      )
    } else {
      console.log(`drizzle/${dialect}: migrations match the schema`)
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
}
process.exitCode = drift ? 1 : 0
