import type { Logger } from 'pino'
import { importExternal } from '../lib/import-external.js'
import { PACKAGE_NAME, packageVersion } from '../lib/package-info.js'

export interface TracingSdk {
  /** Sends the spans still buffered and stops. */
  shutdown(): Promise<void>
}

/**
 * The OpenTelemetry SDK of the process, set up from the standard variables: spans are batched
 * (OTEL_BSP_*) and exported over OTLP/HTTP to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT +
 * /v1/traces (OTEL_EXPORTER_OTLP_HEADERS, …_PROTOCOL, …_TIMEOUT), sampled as OTEL_TRACES_SAMPLER says (parent-based,
 * always on, by default), as the service OTEL_SERVICE_NAME (mrmat-ts-api-fastify) with OTEL_RESOURCE_ATTRIBUTES. W3C
 * trace context (`traceparent`) is read from requests. Loaded only when tracingConfigured() says so.
 */
export async function startTracing(log: Logger): Promise<TracingSdk> {
  const [{ NodeTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, resources] = await Promise.all([
    importExternal<typeof import('@opentelemetry/sdk-trace-node')>('@opentelemetry/sdk-trace-node'),
    importExternal<typeof import('@opentelemetry/exporter-trace-otlp-http')>('@opentelemetry/exporter-trace-otlp-http'),
    importExternal<typeof import('@opentelemetry/resources')>('@opentelemetry/resources'),
  ])
  const resource = resources.defaultResource()
    .merge(resources.resourceFromAttributes({ 'service.name': PACKAGE_NAME, 'service.version': packageVersion }))
    .merge(resources.detectResources({ detectors: [resources.envDetector] }))
  const provider = new NodeTracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  })
  // The global provider, the AsyncLocalStorage context manager and the W3C trace-context propagator.
  provider.register()
  log.info({ endpoint: process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? process.env.OTEL_EXPORTER_OTLP_ENDPOINT },
    'tracing: spans are exported over OTLP/HTTP')
  return { shutdown: async () => provider.shutdown() }
}
