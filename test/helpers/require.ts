interface Tap {
  skip(message: string): void
  fail(message: string): void
}

/**
 * For tests that need a part of the machine (Chromium, nginx, PostgreSQL): says plainly what is
 * missing and skips, or fails when MRMAT_TEST_REQUIRE_ALL=1 (as CI sets it). Returns whether to go on.
 */
export function requirePart(t: Tap, available: boolean, what: string): boolean {
  if (available) return true
  if (process.env.MRMAT_TEST_REQUIRE_ALL === '1') t.fail(`${what} is required (MRMAT_TEST_REQUIRE_ALL=1) but missing`)
  else t.skip(`${what} is missing: skipped (set MRMAT_TEST_REQUIRE_ALL=1 to make this a failure)`)
  return false
}
