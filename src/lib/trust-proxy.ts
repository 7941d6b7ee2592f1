import { isIP } from 'node:net'
import { ConfigError } from './errors.js'

/** Which proxies may tell the client's address, scheme and host: none, anyone, the nearest n hops, or these ranges. */
export type TrustProxy = boolean | number | string[]

/** Names proxy-addr (Fastify's trustProxy) knows for address ranges. */
const PROXY_RANGE_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal'])

function isAddressOrRange(entry: string): boolean {
  if (PROXY_RANGE_NAMES.has(entry)) return true
  const [address = '', prefix, ...rest] = entry.split('/')
  const family = isIP(address)
  if (family === 0 || rest.length > 0) return false
  if (prefix === undefined) return true
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128)
}

/**
 * --trust-proxy as Fastify's trustProxy takes it: true/false, a hop count, or a comma-separated list of addresses and
 * CIDR ranges. A bare `true` trusts whoever connects, so any client could forge its address; behind a known proxy
 * its address is the safer choice.
 */
export function parseTrustProxy(value: boolean | number | string, where = '--trust-proxy'): TrustProxy {
  if (typeof value === 'boolean') return value
  if (typeof value === 'number') return value === 0 ? false : value
  const text = value.trim().toLowerCase()
  if (text === 'true' || text === 'false') return text === 'true'
  if (/^\d+$/.test(text) && Number(text) <= 100) return Number(text) === 0 ? false : Number(text)
  const entries = text.split(',').map((entry) => entry.trim())
  if (text !== '' && entries.every(isAddressOrRange)) return entries
  throw new ConfigError(
    `invalid ${where} (${JSON.stringify(value)}): expected true, false, a hop count `
    + 'or a comma-separated list of addresses and CIDR ranges',
  )
}
