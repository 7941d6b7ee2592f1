import { readFileSync } from 'node:fs'
import t from 'tap'
import { withOptionTable } from '../scripts/readme-options.js'

t.test('the README documents every server option as src/options.ts declares it', async (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  t.equal(readme, withOptionTable(readme), 'run npm run docs:options after changing an option')
})
