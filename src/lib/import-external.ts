/**
 * import() of a package that is loaded from node_modules when first needed (Swagger UI, pino-pretty, OpenTelemetry's
 * SDK, oidc-provider). The command line's bundle is a script compiled with V8's code cache (src/cli/code-cache.ts), in
 * which Node 20 has no import() of its own: there, scripts/bundle.mjs puts in place of this module one that asks the
 * bin, an ES module, to import. Everywhere else it is import() as written.
 */
export async function importExternal<T>(specifier: string): Promise<T> {
  return await import(specifier) as T
}
