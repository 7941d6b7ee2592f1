import { STATUS_CODES } from 'node:http'
import createClient, { type Client } from 'openapi-fetch'
import { displayUrl } from './config.js'
import { ApiError, AuthError, NetworkError, oneLine, type ProblemBody } from './errors.js'
import { exchange, isObject, json, type Answer, type HttpOptions, type Party } from './http.js'
import type { paths } from './openapi-types.js'

type Json<P extends keyof paths, M extends 'get' | 'post' | 'put', S extends number> =
  paths[P][M] extends { responses: Record<S, { content: { 'application/json': infer T } }> } ? T : never

/** What the API answers, as the committed OpenAPI document (openapi.json) describes it: generated, never written. */
export type Resource = Json<'/api/resource/v1/{id}', 'get', 200>
export type ResourcePage = Json<'/api/resource/v1', 'get', 200>
export type Owner = Resource['owner']
type Greeting = Json<'/api/greeting/v1', 'get', 200>
type Health = Json<'/healthz', 'get', 200>

export type GreetingVersion = 'v1' | 'v2' | 'v3'

// The document says what the API sends; these say that the URL is this API at all (a wrong --server may answer JSON).
const isHealth = (body: unknown): body is Health => isObject(body) && typeof body.status === 'string'
const isGreeting = (body: unknown): body is Greeting => isObject(body) && typeof body.message === 'string'
const isResource = (body: unknown): body is Resource =>
  isObject(body) && typeof body.id === 'number' && typeof body.name === 'string'
  && isObject(body.owner) && typeof body.owner.name === 'string'
const isPage = (body: unknown): body is ResourcePage =>
  isObject(body) && Array.isArray(body.resources) && body.resources.every(isResource)
  && (body.next === null || typeof body.next === 'string')

/**
 * Pages followed at most by one `resource list`: a server whose next links never end must not keep the client forever.
 */
const MAX_PAGES = 10_000

/**
 * "the server says: 404 Not Found: There is no resource 9 (request id …)", from the problem body where there is one.
 */
function describe(status: number, problem: ProblemBody | undefined): string {
  const title = typeof problem?.title === 'string'
    ? oneLine(problem.title, 100)
    : STATUS_CODES[status] ?? 'error'
  const detail = typeof problem?.detail === 'string' && problem.detail !== title ? `: ${oneLine(problem.detail)}` : ''
  const requestId = typeof problem?.requestId === 'string' ? ` (request id ${oneLine(problem.requestId, 128)})` : ''
  return `the server says: ${status} ${title}${detail}${requestId}`
}

/** The outcome openapi-fetch gives each call: the parsed body as `data` (success) or `error` (a problem). */
interface Outcome { data?: unknown, error?: unknown, response: Response }

/** The API of one server, through a client typed from the OpenAPI document; a token is asked for only where needed. */
export class Api {
  readonly #party: Party
  readonly #client: Client<paths>

  constructor(readonly server: URL, readonly http: HttpOptions, readonly token: () => Promise<string>) {
    this.#party = { name: 'server', at: displayUrl(server) }
    this.#client = createClient<paths>({
      // The document's paths start with /; the server URL may carry a prefix (https://host/mrmat/) that is kept.
      baseUrl: server.href.replace(/\/$/, ''),
      // Every exchange bounded in time, debugged and its failure put in one line, as the provider's are.
      fetch: async (request) => this.#fetch(request),
    })
  }

  async #fetch(request: Request): Promise<Response> {
    const body = request.body === null ? undefined : await request.text()
    const answer: Answer = await exchange(this.#party, new URL(request.url), {
      method: request.method,
      headers: request.headers,
      ...(body === undefined ? {} : { body }),
    }, this.http)
    const empty = answer.status === 204 || answer.status === 304 || answer.text === ''
    if (!empty && answer.status < 300 && json(answer) === undefined) throw this.#notThisApi(answer.status)
    return new Response(empty ? null : answer.text, { status: answer.status, headers: answer.headers })
  }

  #notThisApi(status: number): NetworkError {
    return new NetworkError(
      `the server at ${this.#party.at} answered ${status} with something other than this API's JSON; `
      + 'is --server right?',
    )
  }

  async #headers(auth: boolean): Promise<Record<string, string>> {
    const accept = { accept: 'application/json' }
    return auth ? { ...accept, authorization: `Bearer ${await this.token()}` } : accept
  }

  /** The body of a success that passes `check`; a problem becomes the error the CLI reports. */
  #result<T>(outcome: Outcome, auth: boolean, check: (body: unknown) => body is T): T {
    const { response } = outcome
    if (!response.ok) {
      const problem = isObject(outcome.error) ? outcome.error as ProblemBody : undefined
      if (response.status === 401 && auth) {
        const again = 'run \'mrmat-ts-api-fastify-client login\' to log in again'
        throw new AuthError(`${describe(response.status, problem)}; ${again}`)
      }
      throw new ApiError(describe(response.status, problem), response.status, problem)
    }
    if (!check(outcome.data)) throw this.#notThisApi(response.status)
    return outcome.data
  }

  async health(): Promise<Health> {
    return this.#result(await this.#client.GET('/healthz', { headers: await this.#headers(false) }), false, isHealth)
  }

  async greeting(version: GreetingVersion, name?: string): Promise<Greeting> {
    const auth = version === 'v3'
    const headers = await this.#headers(auth)
    const outcome = version === 'v1'
      ? await this.#client.GET('/api/greeting/v1', { headers })
      : version === 'v2'
        ? await this.#client.GET('/api/greeting/v2', { headers, params: { query: name === undefined ? {} : { name } } })
        : await this.#client.GET('/api/greeting/v3', { headers })
    return this.#result(outcome, auth, isGreeting)
  }

  /** One page: at most `limit` resources with an id above `after`. */
  async listPage(limit?: number, after?: number): Promise<ResourcePage> {
    const query: { limit?: number, after?: number } = {}
    if (limit !== undefined) query.limit = limit
    if (after !== undefined) query.after = after
    const headers = await this.#headers(true)
    const outcome = await this.#client.GET('/api/resource/v1', { headers, params: { query } })
    return this.#result(outcome, true, isPage)
  }

  /**
   * Every resource, following `next` from page to page. A next link elsewhere than this server's list is refused rather
   * than sent the token: the server builds it from the Host it was asked for, which a misconfigured proxy can get
   * wrong. Its cursor (`after`, `limit`) is what the next request asks for.
   */
  async listAll(): Promise<Resource[]> {
    const resources: Resource[] = []
    const list = new URL('api/resource/v1', this.server)
    let page = await this.listPage()
    const seen = new Set<string>()
    for (let pages = 1; ; pages++) {
      resources.push(...page.resources)
      if (typeof page.next !== 'string') return resources
      const next = new URL(page.next, this.server)
      if (next.origin !== this.server.origin) {
        throw new NetworkError(`the server's next page is on another origin (${next.origin}); not sending it the token`)
      }
      if (next.pathname.replace(/\/$/, '') !== list.pathname) {
        throw new NetworkError(`the server's next page is not its resource list (${next.href})`)
      }
      if (seen.has(next.href) || pages >= MAX_PAGES) {
        throw new NetworkError(`the server's next links do not end (at ${next.href})`)
      }
      seen.add(next.href)
      page = await this.listPage(cursor(next, 'limit'), cursor(next, 'after'))
    }
  }

  async get(id: number): Promise<Resource> {
    const outcome = await this.#client.GET('/api/resource/v1/{id}', {
      headers: await this.#headers(true), params: { path: { id } },
    })
    return this.#result(outcome, true, isResource)
  }

  async create(name: string): Promise<Resource> {
    const outcome = await this.#client.POST('/api/resource/v1', { headers: await this.#headers(true), body: { name } })
    return this.#result(outcome, true, isResource)
  }

  async rename(id: number, name: string): Promise<Resource> {
    const outcome = await this.#client.PUT('/api/resource/v1/{id}', {
      headers: await this.#headers(true), params: { path: { id } }, body: { name },
    })
    return this.#result(outcome, true, isResource)
  }

  async remove(id: number): Promise<void> {
    const outcome = await this.#client.DELETE('/api/resource/v1/{id}', {
      headers: await this.#headers(true), params: { path: { id } },
    })
    this.#result(outcome, true, (body): body is unknown => body === undefined || body === null || body === '')
  }
}

/** A whole number in the next link's query, or undefined (the server's default) when it has none. */
function cursor(url: URL, name: 'limit' | 'after'): number | undefined {
  const value = url.searchParams.get(name)
  return value !== null && /^\d+$/.test(value) ? Number(value) : undefined
}
