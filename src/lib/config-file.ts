import { readFileSync } from 'node:fs'
import { ConfigError } from './errors.js'

/**
 * A JSON config file as an object, or one line saying what is wrong with it: unreadable, not JSON, not an object, or a
 * key that is not among `known` (a typo would otherwise be ignored in silence). A missing file that is `optional`
 * (a default location) gives undefined.
 */
export function readConfigFile(path: string, known: string[], optional = false): Record<string, unknown> | undefined {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (optional && code === 'ENOENT') return undefined
    throw new ConfigError(`cannot read the config file ${path}: ${code ?? (error as Error).message}`)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    throw new ConfigError(`the config file ${path} is not valid JSON: ${(error as Error).message}`)
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`the config file ${path} must hold a JSON object`)
  }
  const unknown = Object.keys(parsed).find((key) => !known.includes(key))
  if (unknown !== undefined) {
    throw new ConfigError(`the config file ${path} has an unknown key "${unknown}" (known: ${known.join(', ')})`)
  }
  return parsed as Record<string, unknown>
}
