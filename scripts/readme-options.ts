// npm run docs:options: writes the server's option table (src/options.ts) into the README between its markers.
// test/readme.test.ts fails when the README's copy differs, so an option is documented where it is declared.
import { readFileSync, writeFileSync } from 'node:fs'
import { optionsMarkdown } from '#src/lib/option-table.js'
import { SERVER_NAMING, SERVER_OPTIONS } from '#src/options.js'

export const BEGIN = '<!-- options:begin (npm run docs:options) -->'
export const END = '<!-- options:end -->'

/** The README with the option table between the markers replaced by the current one. */
export function withOptionTable(readme: string): string {
  const start = readme.indexOf(BEGIN)
  const end = readme.indexOf(END)
  if (start < 0 || end < start) throw new Error(`the README has no ${BEGIN} … ${END} section`)
  const table = optionsMarkdown(SERVER_OPTIONS, SERVER_NAMING)
  return `${readme.slice(0, start + BEGIN.length)}\n${table}\n${readme.slice(end)}`
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  const path = new URL('../README.md', import.meta.url)
  writeFileSync(path, withOptionTable(readFileSync(path, 'utf8')))
}
