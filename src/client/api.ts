import { STATUS_CODES } from 'node:http'
import { displayUrl } from './config.js'
import type { Resource, ResourceList as ResourcePage } from '#plugins/resource/v1/schemas.js'
import { ApiError, AuthError, NetworkError, oneLine, type ProblemBody } from './errors.js'
import { exchange, isObject, json, type Answer, type HttpOptions, type Party } from './http.js'

export type { Owner, Resource, ResourceList as ResourcePage } from '#plugins/resource/v1/schemas.js'

export type GreetingVersion = 'v1' | 'v2' | 'v3'

const isHealth = (body: unknown): body is { status: string } => isObject(body) && typeof body.status === 'string'
const isGreeting = (body: unknown): body is { message: string } => isObject(body) && typeof body.message === 'string'
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

function problemOf(answer: Answer): ProblemBody | undefined {
  const body = json(answer)
  return isObject(body) ? body : undefined
}

/**
 * "the server says: 404 Not Found: There is no resource 9 (request id …)", from the problem body where there is one.
 */
function describe(answer: Answer, problem: ProblemBody | undefined): string {
  const title = typeof problem?.title === 'string'
    ? oneLine(problem.title, 100)
    : STATUS_CODES[answer.status] ?? 'error'
  const detail = typeof problem?.detail === 'string' && problem.detail !== title ? `: ${oneLine(problem.detail)}` : ''
  const requestId = typeof problem?.requestId === 'string' ? ` (request id ${oneLine(problem.requestId, 128)})` : ''
  return `the server says: ${answer.status} ${title}${detail}${requestId}`
}

/** The API of one server, as the README documents it; a token is asked for only by the routes that need one. */
export class Api {
  readonly #party: Party

  constructor(readonly server: URL, readonly http: HttpOptions, readonly token: () => Promise<string>) {
    this.#party = { name: 'server', at: displayUrl(server) }
  }

  async #call(method: string, target: string | URL, options: { auth: boolean, body?: unknown }): Promise<Answer> {
    const url = new URL(target, this.server)
    const headers: Record<string, string> = { accept: 'application/json' }
    if (options.auth) headers.authorization = `Bearer ${await this.token()}`
    if (options.body !== undefined) headers['content-type'] = 'application/json'
    const answer = await exchange(this.#party, url, {
      method,
      headers,
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
    }, this.http)
    if (answer.status >= 200 && answer.status < 300) return answer
    const problem = problemOf(answer)
    if (answer.status === 401 && options.auth) {
      throw new AuthError(`${describe(answer, problem)}; run 'mrmat-ts-api-fastify-client login' to log in again`)
    }
    throw new ApiError(describe(answer, problem), answer.status, problem)
  }

  /** The body as a JSON object that passes `check`; anything else means the URL is not this API. */
  #object<T>(answer: Answer, check: (body: unknown) => body is T): T {
    const body = json(answer)
    if (!check(body)) {
      throw new NetworkError(
        `the server at ${this.#party.at} answered ${answer.status} with something other than this API's JSON; `
        + 'is --server right?',
      )
    }
    return body
  }

  async health(): Promise<{ status: string }> {
    return this.#object(await this.#call('GET', 'healthz/', { auth: false }), isHealth)
  }

  async greeting(version: GreetingVersion, name?: string): Promise<{ message: string }> {
    const query = name === undefined ? '' : `?${new URLSearchParams({ name }).toString()}`
    const answer = await this.#call('GET', `api/greeting/${version}/${query}`, { auth: version === 'v3' })
    return this.#object(answer, isGreeting)
  }

  async #page(target: string | URL): Promise<ResourcePage> {
    return this.#object(await this.#call('GET', target, { auth: true }), isPage)
  }

  /** One page: at most `limit` resources with an id above `after`. */
  async listPage(limit?: number, after?: number): Promise<ResourcePage> {
    const query = new URLSearchParams()
    if (limit !== undefined) query.set('limit', String(limit))
    if (after !== undefined) query.set('after', String(after))
    const search = query.size > 0 ? `?${query.toString()}` : ''
    return this.#page(`api/resource/v1/${search}`)
  }

  /**
   * Every resource, following `next` from page to page. A next link to another origin is refused rather than sent the
   * token: the server builds it from the Host it was asked for, which a misconfigured proxy can get wrong.
   */
  async listAll(): Promise<Resource[]> {
    const resources: Resource[] = []
    let page = await this.listPage()
    const seen = new Set<string>()
    for (let pages = 1; ; pages++) {
      resources.push(...page.resources)
      if (typeof page.next !== 'string') return resources
      const next = new URL(page.next, this.server)
      if (next.origin !== this.server.origin) {
        throw new NetworkError(`the server's next page is on another origin (${next.origin}); not sending it the token`)
      }
      if (seen.has(next.href) || pages >= MAX_PAGES) {
        throw new NetworkError(`the server's next links do not end (at ${next.href})`)
      }
      seen.add(next.href)
      page = await this.#page(next)
    }
  }

  async get(id: number): Promise<Resource> {
    return this.#resource(await this.#call('GET', `api/resource/v1/${id}`, { auth: true }))
  }

  async create(name: string): Promise<Resource> {
    return this.#resource(await this.#call('POST', 'api/resource/v1/', { auth: true, body: { name } }))
  }

  async rename(id: number, name: string): Promise<Resource> {
    return this.#resource(await this.#call('PUT', `api/resource/v1/${id}`, { auth: true, body: { name } }))
  }

  async remove(id: number): Promise<void> {
    await this.#call('DELETE', `api/resource/v1/${id}`, { auth: true })
  }

  #resource(answer: Answer): Resource {
    return this.#object(answer, isResource)
  }
}
