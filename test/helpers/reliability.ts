/**
 * The reliability tests' two sizes: short (the default, as `npm run test:reliability` and CI run them) and full
 * (`npm run test:reliability -- --full`, where the README's figures come from). The assertions are the same.
 */
export const FULL = process.env.MRMAT_RELIABILITY === 'full'

/** The short or the full figure. */
export function sized<T>(short: T, full: T): T {
  return FULL ? full : short
}
