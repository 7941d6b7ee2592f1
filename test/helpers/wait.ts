import { setTimeout as delay } from 'node:timers/promises'

/** The promise's value, or a failure naming what did not finish within ms; onTimeout runs first (to kill, say). */
export async function within<T>(promise: Promise<T>, ms: number, what: string, onTimeout?: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      onTimeout?.()
      reject(new Error(`${what}: not within ${String(ms)} ms`))
    }, ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Polls until the probe returns something other than undefined or false, at most ms; then fails naming what. */
export async function pollUntil<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  ms: number,
  what: string,
  every = 50,
): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await probe()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`${what}: not within ${String(ms)} ms`)
    await delay(every)
  }
}

/**
 * Lets a time-based window (a cooldown, a cache TTL) run out. Only for those: anything the test can observe is polled
 * with pollUntil instead.
 */
export async function elapse(ms: number): Promise<void> {
  await delay(ms)
}
