import type { FastifyRequest } from 'fastify'
import type { Registry } from 'prom-client'
import type { Database } from '../plugins/database/database.js'

/**
 * What the plugins tell metrics, when metrics are on (see plugins/metrics.ts). Interfaces only, so that a plugin that
 * reports loads nothing of prom-client: without metrics there is no observer and nothing is counted.
 */
export interface AuthObserver {
  /** A token check ended: accepted (reason: `cached`, `jwt`, `introspection`) or refused (the problem's reason). */
  checked(outcome: 'accepted' | 'refused', reason: string): void
  /** A token was looked up in the cache of verified tokens. */
  cacheLookup(hit: boolean): void
  /** The provider's key set was fetched, or failed to be. */
  jwksFetched(ok: boolean): void
  /** An opaque token was introspected: its answer, a refusal (400) or an error. */
  introspected(outcome: 'active' | 'inactive' | 'refused' | 'error'): void
}

/** A span begun for a piece of a request's work, ended once that work is done. */
export interface WorkSpan {
  setAttribute(name: string, value: string | number | boolean): void
  end(error?: unknown): void
}

/**
 * Spans for the work of a request, when tracing is on (see plugins/tracing.ts): a child of the request's span. Without
 * tracing there is no tracer and no span is begun.
 */
export interface RequestTracer {
  startSpan(request: FastifyRequest, name: string, attributes?: Record<string, string | number | boolean>): WorkSpan
  /** Gives each statement of the database a span, a child of the span active when it runs. */
  traceDatabase(database: Database): void
}

/**
 * Whether the standard OTEL_* variables ask for traces to be exported: an OTLP endpoint is named, the SDK is not
 * disabled and the traces exporter is not `none`. Without, no OpenTelemetry module is loaded.
 */
export function tracingConfigured(env: NodeJS.ProcessEnv): boolean {
  const named = (value: string | undefined): boolean => value !== undefined && value.trim() !== ''
  if (!named(env.OTEL_EXPORTER_OTLP_ENDPOINT) && !named(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)) return false
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false
  const exporters = (env.OTEL_TRACES_EXPORTER ?? 'otlp').split(',').map((name) => name.trim().toLowerCase())
  return !exporters.includes('none') && exporters.includes('otlp')
}

/** The ids of a request's span, set while tracing is on; its access line and its log lines carry them. */
export const TRACE_IDS = Symbol.for('mrmat-ts-api-fastify.trace-ids')

export interface TraceIds {
  trace_id: string
  span_id: string
}

/**
 * In a route's config: load shedding leaves the route's requests alone (metrics are wanted most under load, and a
 * scrape is cheap).
 */
export const NOT_SHED = Symbol.for('mrmat-ts-api-fastify.not-shed')

/** The metrics plugin's decorator: what other plugins report through. */
export interface ServerMetrics {
  /** The registry the server's metrics are in (served at /metrics or by the CLI's metrics port). */
  registry: Registry
  auth: AuthObserver
  /** A request was refused under load (503), and why. */
  shed(reason: string): void
  /** Reports the database's pool, errors and busy waits at each scrape. */
  watchDatabase(database: Database): void
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Present when the metrics plugin (mrmat-metrics) is registered in this context or above. */
    metrics: ServerMetrics
    /** Present when the tracing plugin (mrmat-tracing) is registered in this context or above. */
    requestTracer: RequestTracer
  }
}
