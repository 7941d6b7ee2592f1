/**
 * Characters that must not reach anyone's terminal or page from a stranger's text: control characters (C0, DEL, C1:
 * Unicode's Cc, which carry terminal escapes) and the bidirectional formatting marks (U+061C, U+200E, U+200F,
 * U+202A–U+202E, U+2066–U+2069) that can make text read differently from what it is. Spelled as ranges so that a
 * JSON Schema pattern (and clients without Unicode property escapes) read it alike.
 */
export const UNSAFE_CHARACTERS = '\\u0000-\\u001F\\u007F-\\u009F\\u061C\\u200E\\u200F\\u202A-\\u202E\\u2066-\\u2069'

const UNSAFE = new RegExp(`[${UNSAFE_CHARACTERS}]`, 'gu')

/** Text of someone else's for storing and showing: unsafe characters dropped, at most `max` characters. */
export function cleanText(text: string, max: number): string {
  const clean = text.replace(UNSAFE, '')
  return clean.length > max ? clean.slice(0, max) : clean
}

/** Text of someone else's for a terminal: every unsafe character shown as its escape, e.g. \u{202e}. */
export function printable(text: string): string {
  return text.replace(UNSAFE, (c) => `\\u{${(c.codePointAt(0) ?? 0).toString(16)}}`)
}
