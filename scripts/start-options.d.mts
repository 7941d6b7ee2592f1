/** The options of package.json's start script, `node [options] dist/cli/main.js` (see start-options.mjs). */
export function startNodeFlags(root: string): string[]
