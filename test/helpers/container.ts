import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import type { Test } from 'tap'
import { ROOT } from './build.js'
import { requirePart } from './require.js'

/*
 * The container engine (podman, else docker) as the tests use it: the real Dockerfile built into a real image, run as
 * real containers. The image is built once per run: the first test file to ask builds it, later ones find every layer
 * cached (the container tests run one file at a time, `npm run test:container`).
 *
 * Where no registry can be reached, base images stood in locally under their official names are used (podman's
 * --pull=missing takes a local image first). MRMAT_TEST_CONTAINER_ENGINE picks the engine; BUILD_MOUNT_ARGS adds
 * arguments to the build (e.g. `-v` mounts of a CA bundle a registry proxy needs), none of which reach the image.
 */

/** The version the tests build the image with: what --version, the labels and the OpenAPI document must show. */
export const IMAGE_VERSION = '9.8.7-test.1'
export const IMAGE = 'localhost/mrmat-ts-api-fastify:test'
const BUILD_TIMEOUT_MS = 15 * 60_000
const COMMAND_TIMEOUT_MS = 120_000

export interface Run {
  code: number
  stdout: string
  stderr: string
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const file = join(dir, name)
    if (dir !== '' && existsSync(file)) return file
  }
  return undefined
}

/** podman or docker, whichever is installed (podman first); undefined when neither is. */
export function containerEngine(): string | undefined {
  const wanted = process.env.MRMAT_TEST_CONTAINER_ENGINE
  if (wanted !== undefined && wanted !== '') return onPath(wanted)
  return onPath('podman') ?? onPath('docker')
}

export const isPodman = (engine: string): boolean => engine.endsWith('podman')

/** Runs a command to its end; never rejects: the exit code and output are the caller's to judge. */
export async function run(command: string, args: string[], timeout = COMMAND_TIMEOUT_MS,
  env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd: ROOT, timeout, maxBuffer: 64 * 1024 * 1024, env }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1
      resolve({ code, stdout, stderr: error !== null && stderr === '' ? error.message : stderr })
    })
  })
}

/** The command's stdout, or a failure showing what it printed. */
export async function output(command: string, args: string[], timeout?: number): Promise<string> {
  const result = await run(command, args, timeout)
  if (result.code !== 0) {
    throw new Error(`${[command, ...args].join(' ')} exited ${String(result.code)}\n${result.stdout}${result.stderr}`)
  }
  return result.stdout
}

export interface BuiltImage {
  engine: string
  image: string
  /** Seconds the build took in this process (a cached build takes seconds). */
  buildSeconds: number
}

let built: Promise<BuiltImage> | undefined

async function build(engine: string): Promise<BuiltImage> {
  const started = Date.now()
  const extra = (process.env.BUILD_MOUNT_ARGS ?? '').split(/\s+/).filter((arg) => arg !== '')
  await output(engine, [
    'build',
    ...(isPodman(engine) ? ['--pull=missing', '--format', 'docker'] : []),
    '--network', 'host',
    ...extra,
    '--build-arg', `MRMAT_VERSION=${IMAGE_VERSION}`,
    '-t', IMAGE,
    '.',
  ], BUILD_TIMEOUT_MS)
  return { engine, image: IMAGE, buildSeconds: (Date.now() - started) / 1000 }
}

/**
 * The image of the repository's unmodified Dockerfile, built with IMAGE_VERSION; undefined (the test reports itself
 * skipped, or failed under MRMAT_TEST_REQUIRE_ALL=1) when there is no container engine.
 */
export async function builtImage(t: Test): Promise<BuiltImage | undefined> {
  const engine = containerEngine()
  if (!requirePart(t, engine !== undefined, 'a container engine (podman or docker on PATH)')) return undefined
  built ??= build(engine as string)
  return built
}

let names = 0

/** A name for a container, volume or pod that no other test or run has: removed by the caller's teardown. */
export function uniqueName(what: string): string {
  return `mrmat-test-${what}-${String(process.pid)}-${String(++names)}`
}
