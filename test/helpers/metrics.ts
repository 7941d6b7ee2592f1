import type { FastifyInstance } from 'fastify'

/** One sample of the Prometheus text format: its name, labels and value. */
export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** The samples of a scrape in the Prometheus text format (0.0.4); comments left out. */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (match === null) throw new Error(`not a sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const [, key = '', value = ''] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key] = value.replace(/\\(.)/g, (_all, c: string) => (c === 'n' ? '\n' : c))
    }
    samples.push({ name: match[1] ?? '', labels, value: Number(match[3]) })
  }
  return samples
}

/** The sum of the samples of a metric whose labels include these; undefined when there is none. */
export function valueOf(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const matching = parseMetrics(text).filter((sample) => sample.name === name
    && Object.entries(labels).every(([key, value]) => sample.labels[key] === value))
  return matching.length === 0 ? undefined : matching.reduce((sum, sample) => sum + sample.value, 0)
}

/** GET /metrics of an app, by inject (the route is not in the OpenAPI document that send() holds answers to). */
export async function scrape(app: FastifyInstance, path = '/metrics'): Promise<{ status: number, contentType: string,
  text: string }> {
  const reply = await app.inject({ method: 'GET', url: path })
  return { status: reply.statusCode, contentType: String(reply.headers['content-type']), text: reply.body }
}
