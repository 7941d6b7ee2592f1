import { createLogger } from './logger.js'
import type { ServerConfig } from './config.js'
import { DEV_AUDIENCE, nextSteps, serverUrl, withDevIssuer } from './dev.js'
import { serve } from './serve.js'

/** `dev`: the development identity provider, then the server trusting it; the provider closes after the server. */
export async function serveDev(config: ServerConfig): Promise<void> {
  const log = await createLogger(config)
  log.warn('DEVELOPMENT MODE: an identity provider that signs in anyone as any name runs in this process, on '
    + 'loopback only. Never use the dev command in production: use serve with a real identity provider.')
  // Loaded only here: serve never loads oidc-provider.
  const { startDevIdentityProvider } = await import('./dev-identity-provider.js')
  const provider = await startDevIdentityProvider({
    instancePath: config.instancePath,
    port: config.devIssuerPort,
    audience: config.audience ?? DEV_AUDIENCE,
    readScope: config.resourceReadScope,
    writeScope: config.resourceWriteScope,
  })
  log.info({ issuer: provider.issuer }, 'development identity provider listening')
  try {
    await serve(withDevIssuer(config, provider.issuer), {
      log,
      onListening: (port) => {
        const server = serverUrl(config.host, port)
        process.stderr.write(nextSteps(server, provider.issuer, provider.deviceClientId, config.instancePath))
      },
      onClose: async () => provider.close(),
    })
  } catch (error) {
    await provider.close()
    throw error
  }
}
