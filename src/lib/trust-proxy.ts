import { isIP } from 'node:net'
import { ConfigError } from './errors.js'

/** Which proxies may tell the client's address, scheme and host: none, anyone, or these addresses and ranges. */
export type TrustProxy = boolean | string[]

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

const HOP_COUNT = 'a hop count cannot tell a proxy from a client that connects directly and writes X-Forwarded-For '
  + 'itself (Fastify trusts nobody for one): name the proxy\'s addresses or ranges instead, e.g. 127.0.0.1, '
  + '10.0.0.0/8 or loopback'

/**
 * --trust-proxy as Fastify's trustProxy takes it: true/false, or a comma-separated list of addresses and CIDR ranges.
 * A bare `true` trusts whoever connects, so any client could forge its address; behind a known proxy its address is
 * the safe choice. A hop count is refused rather than silently trusting nobody, as Fastify does with one.
 */
export function parseTrustProxy(value: boolean | number | string, where = '--trust-proxy'): TrustProxy {
  if (typeof value === 'boolean') return value
  const text = String(value).trim().toLowerCase()
  if (text === 'true' || text === 'false' || text === '0') return text === 'true'
  if (/^\d+$/.test(text)) throw new ConfigError(`invalid ${where} (${JSON.stringify(value)}): ${HOP_COUNT}`)
  const entries = text.split(',').map((entry) => entry.trim())
  if (text !== '' && entries.every(isAddressOrRange)) return entries
  throw new ConfigError(
    `invalid ${where} (${JSON.stringify(value)}): expected true, false `
    + 'or a comma-separated list of addresses and CIDR ranges',
  )
}
