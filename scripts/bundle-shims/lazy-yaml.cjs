// yaml for what the command lines bundle (@fastify/swagger writes its document as YAML only when asked, and the
// server never asks): loaded from node_modules on the first call instead of at every start.
'use strict'
exports.stringify = (...args) => require('yaml').stringify(...args)
exports.parse = (...args) => require('yaml').parse(...args)
