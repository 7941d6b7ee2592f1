import { existsSync } from 'node:fs'
import type { Test } from 'tap'

/**
 * The test's own folder (tap's testdir, removed after the test), made on first use and shared from then on: each call
 * of t.testdir() would empty it. A test that wants files of its own in it calls t.testdir(files) before anything else.
 */
export function folder(t: Test): string {
  return existsSync(t.testdirName) ? t.testdirName : t.testdir()
}
