#!/usr/bin/env node
// Stamps the build's version into dist/src/lib/version.json, which --version, the OpenAPI document and
// the image's labels show. The build orchestrator (CI, `docker build --build-arg MRMAT_VERSION=…`) sets
// MRMAT_VERSION; without it the build is a development one, 0.0.0.dev0, as in the seed. A value that
// could not be an image tag or a label is refused here rather than shipped.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const DEV_VERSION = '0.0.0.dev0'
const out = process.argv[2] ?? join('dist', 'src', 'lib')
const given = process.env.MRMAT_VERSION
const version = given === undefined || given === '' ? DEV_VERSION : given

if (!/^[0-9A-Za-z][0-9A-Za-z._+-]{0,127}$/.test(version)) {
  console.error(`stamp-version: MRMAT_VERSION ${JSON.stringify(version)} is not a version `
    + '(letters, digits, ".", "_", "+", "-"; at most 128 characters, starting with a letter or digit)')
  process.exit(2)
}
mkdirSync(out, { recursive: true })
writeFileSync(join(out, 'version.json'), `${JSON.stringify({ version })}\n`)
console.log(`stamp-version: ${version} -> ${join(out, 'version.json')}`)
