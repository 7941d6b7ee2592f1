// npm run docs:examples: copies each example program (examples/*.ts, examples/tsconfig.json) into the README where a
// marker names it. test/readme.test.ts fails when a copy differs, and test/package.test.ts type-checks and runs the
// programs themselves against the packed package, so the README shows code that runs.
import { readFileSync, writeFileSync } from 'node:fs'

const MARKER = /<!-- example:begin (examples\/[\w.-]+) -->\n[\s\S]*?<!-- example:end -->/g

/** The README with every marked example replaced by the file it names. */
export function withExamples(readme: string, read = (path: string) => readFileSync(new URL(`../${path}`,
  import.meta.url), 'utf8')): string {
  return readme.replace(MARKER, (_block, path: string) => {
    const language = path.endsWith('.json') ? 'json' : 'ts'
    return `<!-- example:begin ${path} -->\n\`\`\`${language}\n${read(path)}\`\`\`\n<!-- example:end -->`
  })
}

/** The examples the README names. */
export function examplesNamed(readme: string): string[] {
  return [...readme.matchAll(MARKER)].map((match) => match[1] ?? '')
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  const path = new URL('../README.md', import.meta.url)
  writeFileSync(path, withExamples(readFileSync(path, 'utf8')))
}
