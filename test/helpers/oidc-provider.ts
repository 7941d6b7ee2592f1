// The OpenID provider fixture lives in test/fixtures/oidc-provider.ts. This path stays for scripts/bench-server.ts
// (and test/app-plugin.test.ts on main), which import it; once they import the fixture itself, this file goes.
export * from '../fixtures/oidc-provider.js'
