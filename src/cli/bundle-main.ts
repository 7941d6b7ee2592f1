#!/usr/bin/env node
// The built package's bin (dist/cli/main.js; main.ts runs the sources). As main.ts, it holds a tick object before
// anything else is loaded (see tick-map.ts); then it runs the command line from its script, compiled with V8's code
// cache (see code-cache.ts), and makes the script's import() of packages loaded on first use (import-external.ts).
import { keepTickObjectMapAlive } from '../lib/tick-map.js'

keepTickObjectMapAlive()
const { compileScript, runScript } = await import('./code-cache.js')
const dir = import.meta.dirname
await runScript(compileScript(dir), dir, async (specifier) => import(specifier) as Promise<unknown>).run()
