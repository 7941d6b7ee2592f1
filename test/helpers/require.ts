import type { Test } from 'tap'

/**
 * For tests that need a part of the machine (Chromium, nginx, PostgreSQL): says plainly what is
 * missing and skips, or fails when MRMAT_TEST_REQUIRE_ALL=1 (as CI sets it). Returns whether to go on.
 */
export function requirePart(t: Test, available: boolean, what: string): boolean {
  if (available) return true
  if (process.env.MRMAT_TEST_REQUIRE_ALL === '1') t.fail(`${what} is required (MRMAT_TEST_REQUIRE_ALL=1) but missing`)
  else t.pass(`${what} is missing`, { skip: 'set MRMAT_TEST_REQUIRE_ALL=1 to make this a failure' })
  return false
}
