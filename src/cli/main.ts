#!/usr/bin/env node
// The server's command line (the package's bin). Before anything else is loaded, and the garbage collections that
// loading brings, the process holds a tick object so that process.nextTick stays fast (see tick-map.ts); the command
// line itself (command-line.ts) is loaded after.
import { keepTickObjectMapAlive } from '../lib/tick-map.js'

keepTickObjectMapAlive()
await (await import('./command-line.js')).run()
