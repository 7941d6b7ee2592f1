import { readFileSync } from 'node:fs'
import t from 'tap'
import { parse } from 'yaml'

// The GitHub Actions pipeline cannot run here; what can be checked is that it parses, does what the README says
// (lint, test against PostgreSQL, build the image, push on tags with the tag as MRMAT_VERSION), and that every npm
// script a step runs exists.

interface Step { name?: string, run?: string, uses?: string, if?: string }
interface Job { 'needs'?: string, 'services'?: Record<string, { image: string }>, 'steps': Step[] }
interface Workflow { on: { push: { tags: string[] }, pull_request: unknown }, jobs: Record<string, Job> }

const workflow = parse(readFileSync(new URL('../.github/workflows/ci.yaml', import.meta.url), 'utf8')) as Workflow
const scripts = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  scripts: Record<string, string>
}).scripts
const steps = Object.values(workflow.jobs).flatMap((job) => job.steps)
const commands = steps.flatMap((step) => step.run?.split('\n') ?? [])

t.test('every npm script a step runs is in package.json', async (t) => {
  const used = commands.flatMap((line) => [...line.matchAll(/\bnpm (?:run ([\w:-]+)|(test)\b)/g)])
    .map((match) => match[1] ?? match[2] ?? '')
  t.ok(used.length >= 4, `steps run npm scripts: ${used.join(', ')}`)
  for (const name of used) t.ok(name in scripts, `npm run ${name}`)
  for (const wanted of ['lint', 'typecheck', 'test', 'test:container']) t.ok(used.includes(wanted), `runs ${wanted}`)
})

t.test('tests run on PostgreSQL; the image is built, and pushed on tags with the tag as its version', async (t) => {
  t.match(workflow.jobs.test?.services?.postgres?.image, /postgres:/)
  t.same(workflow.on.push.tags, ['v*'])
  t.ok(workflow.on.pull_request !== undefined, 'pull requests too')
  t.equal(workflow.jobs.image?.needs, 'test', 'the image only after the tests pass')
  const image = workflow.jobs.image?.steps ?? []
  t.ok(image.some((step) => step.run?.includes('MRMAT_VERSION=${GITHUB_REF_NAME#v}')), 'the tag as the version')
  t.ok(image.some((step) => /docker build --build-arg MRMAT_VERSION="\$MRMAT_VERSION"/.test(step.run ?? '')))
  const push = image.find((step) => step.run?.includes('docker push'))
  t.equal(push?.if, 'github.ref_type == \'tag\'', 'pushed on tags only')
  t.ok(image.some((step) => step.run?.includes('helm package') && step.run.includes('--app-version "$MRMAT_VERSION"')),
    'the chart\'s appVersion is the image\'s version')
})
