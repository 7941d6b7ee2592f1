import { readFileSync } from 'node:fs'
import t from 'tap'
import { examplesNamed, withExamples } from '../scripts/readme-examples.js'
import { withOptionTable } from '../scripts/readme-options.js'

t.test('the README documents every server option as src/options.ts declares it', async (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  t.equal(readme, withOptionTable(readme), 'run npm run docs:options after changing an option')
})

t.test('the README shows each example program as examples/ holds it', async (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  t.same(examplesNamed(readme).sort(),
    ['examples/greeting-v3.ts', 'examples/host-app.ts', 'examples/plugins.ts', 'examples/tsconfig.json'],
    'every example is shown')
  t.equal(readme, withExamples(readme), 'run npm run docs:examples after changing one')
})

t.test('every URL with a query in a shell block of the README is quoted (zsh globs an unquoted ?)', async (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const shell = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((block) => (block[1] ?? '').split('\n'))
  const inline = [...readme.matchAll(/`((?:curl|npx|mrmat-ts-api-fastify)[^`]*)`/g)].map((match) => match[1] ?? '')
  const unquoted = [...shell, ...inline].filter((line) => /(^|\s)[^\s'"]*https?:\/\/[^\s'"]*\?/.test(line))
  t.same(unquoted, [], 'quote them: \'http://…?name=Bob\'')
})
