import { existsSync } from 'node:fs'
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { chromium, type Browser, type Page } from 'playwright-core'
import { listen } from './helpers/app.js'
import { send } from './helpers/http.js'
import { requirePart } from './helpers/require.js'

// Swagger UI as a person sees it: the real server, a real headless Chromium (Debian's), no network
// but loopback.

const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = [
  // Chromium runs as root here.
  '--no-sandbox',
  '--disable-gpu',
  // No network but loopback: keep Chromium from calling Google in the background.
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]
/** Every wait is bounded by this, in milliseconds. */
const WAIT = 15_000
const SCREENSHOT = '/tmp/docs-screenshot.png'

/**
 * Swagger UI's own logo is an SVG with an inline <style> that the static CSP (style-src without
 * 'unsafe-inline') blocks; @fastify/swagger-ui swaps in the Fastify logo right after, so nobody sees
 * it, but Chromium logs it as a console error (https://github.com/swagger-api/swagger-ui/issues/10655).
 * This is that <style>'s hash, so only that one error is singled out.
 */
const SWAGGER_LOGO_STYLE_HASH = 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='

/** Chromium, closed after the test; undefined (the test skipped or failed) when it is not installed. */
async function openBrowser(t: Test, extraArgs: string[] = []): Promise<Browser | undefined> {
  if (!requirePart(t, existsSync(CHROMIUM), `Chromium (${CHROMIUM})`)) return undefined
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [...CHROMIUM_ARGS, ...extraArgs],
    timeout: WAIT,
  })
  t.teardown(() => browser.close())
  return browser
}

interface PageLog {
  /** Every URL the page requested, in order. */
  requests: string[]
  /** Requests that got no response at all (refused, TLS error, blocked). */
  failed: string[]
  /** Responses with a 4xx/5xx status. */
  errorResponses: string[]
  /** Console errors and uncaught page errors, but for the known Swagger logo CSP report. */
  errors: string[]
  /** Console errors about the Swagger logo's inline <style> (see SWAGGER_LOGO_STYLE_HASH). */
  logoCspErrors: string[]
}

async function openPage(browser: Browser): Promise<{ page: Page, log: PageLog }> {
  const page = await browser.newPage()
  page.setDefaultTimeout(WAIT)
  const log: PageLog = { requests: [], failed: [], errorResponses: [], errors: [], logoCspErrors: [] }
  page.on('request', (request) => { log.requests.push(request.url()) })
  page.on('requestfailed', (request) => {
    log.failed.push(`${request.url()}: ${request.failure()?.errorText ?? 'failed'}`)
  })
  page.on('response', (response) => {
    if (response.status() >= 400) log.errorResponses.push(`${String(response.status())} ${response.url()}`)
  })
  page.on('console', (message) => {
    if (message.type() !== 'error') return
    if (message.text().includes(SWAGGER_LOGO_STYLE_HASH)) log.logoCspErrors.push(message.text())
    else log.errors.push(`console: ${message.text()}`)
  })
  page.on('pageerror', (error) => { log.errors.push(`page error: ${error.message}`) })
  return { page, log }
}

interface Operation {
  method: string
  path: string
  tag: string
}

/** The operations /openapi.json documents, each with its first tag. */
async function documentedOperations(app: FastifyInstance): Promise<{ tags: string[], operations: Operation[] }> {
  const res = await send<{
    tags?: { name: string }[]
    paths: Record<string, Record<string, { tags?: string[] }>>
  }>(app, '/openapi.json')
  const doc = res.body
  if (res.status !== 200 || doc === undefined) throw new Error(`/openapi.json answered ${String(res.status)}`)
  const operations: Operation[] = []
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      operations.push({ method: method.toUpperCase(), path, tag: operation.tags?.[0] ?? 'default' })
    }
  }
  return { tags: (doc.tags ?? []).map((tag) => tag.name), operations }
}

/** The operation blocks Swagger UI rendered, as method + path. */
async function renderedOperations(page: Page): Promise<string[]> {
  const blocks = page.locator('.opblock')
  const rendered: string[] = []
  for (let i = 0; i < await blocks.count(); i++) {
    const block = blocks.nth(i)
    const method = (await block.locator('.opblock-summary-method').innerText()).trim()
    const path = (await block.locator('.opblock-summary-path').innerText()).trim()
    rendered.push(`${method} ${path}`)
  }
  return rendered.sort()
}

/**
 * A host name other than localhost/127.0.0.1 (Chromium exempts those from upgrade-insecure-requests), as when the
 * server listens on 0.0.0.0 in a container; Chromium maps it to loopback.
 */
const HOST = 'docs.example'
// One browser for the file: each test has pages of its own.
const browser = await openBrowser(t, [`--host-resolver-rules=MAP ${HOST} 127.0.0.1`])

t.test('Swagger UI at /docs/ lists every operation and runs greeting v2 from "Try it out"', async (t) => {
  if (browser === undefined) return
  const { app, url } = await listen(t)
  const { page, log } = await openPage(browser)

  const res = await page.goto(`${url}/docs/`)
  t.equal(res?.status(), 200, '/docs/ answers 200')
  await page.locator('.opblock').first().waitFor({ state: 'visible' })
  const title = page.getByRole('heading', { name: /mrmat-ts-api-fastify/ })
  await title.waitFor({ state: 'visible' })
  t.ok(await title.isVisible(), 'the page shows the API title')
  t.ok(await page.locator('.opblock').count() > 0, 'and operations')

  // /docs/json, which Swagger UI loads, is /openapi.json: see openapi.test.ts.
  const { tags, operations } = await documentedOperations(app)

  await t.test('every tag has a visible section', async (t) => {
    t.match(tags, ['healthz', 'greeting v1', 'greeting v2'], 'the document declares the three tags')
    for (const tag of new Set([...tags, ...operations.map((op) => op.tag)])) {
      const heading = page.locator(`h3.opblock-tag[data-tag="${tag}"]`)
      await heading.waitFor({ state: 'visible' })
      t.equal((await heading.locator('a').first().innerText()).trim(), tag, `tag section '${tag}' is visible`)
    }
  })

  await t.test('every documented operation is listed under its tag', async (t) => {
    const expected = [
      'GET /healthz', 'GET /healthz/liveness', 'GET /healthz/readiness', 'GET /api/greeting/v1', 'GET /api/greeting/v2',
    ]
    const documented = operations.map((op) => `${op.method} ${op.path}`)
    for (const op of expected) t.ok(documented.includes(op), `/openapi.json documents ${op}`)
    t.same(await renderedOperations(page), [...documented].sort(), 'the page lists exactly the documented operations')
    for (const op of operations) {
      const block = page
        .locator(`h3.opblock-tag[data-tag="${op.tag}"] + div .opblock`)
        .filter({ has: page.locator(`.opblock-summary-path[data-path="${op.path}"]`) })
        .filter({ has: page.getByText(op.method, { exact: true }) })
      await block.first().waitFor({ state: 'visible' })
      t.equal(await block.count(), 1, `${op.method} ${op.path} is shown once under '${op.tag}'`)
    }
  })

  const op = page.locator('#operations-greeting_v2-getGreetingV2')
  const nameInput = op.locator('tr[data-param-name="name"][data-param-in="query"] input')
  const liveResponse = op.locator('.live-responses-table tbody tr.response')

  await t.test('"Try it out" greets by name', async (t) => {
    const summary = op.locator('.opblock-summary-control')
    await summary.click()
    t.equal(await summary.getAttribute('aria-expanded'), 'true', 'the operation expands')
    await op.getByRole('button', { name: 'Try it out' }).click()
    await nameInput.waitFor({ state: 'visible' })
    t.ok(await nameInput.isEditable(), 'the name parameter can be typed into')
    await nameInput.fill('Chromium')

    const answered = page.waitForResponse((r) => r.url().startsWith(`${url}/api/greeting/v2`))
    await op.getByRole('button', { name: 'Execute' }).click()
    const response = await answered
    t.equal(new URL(response.url()).searchParams.get('name'), 'Chromium', 'the request carries the typed name')

    await liveResponse.waitFor({ state: 'visible' })
    t.equal((await liveResponse.locator('.response-col_status').innerText()).trim(), '200', 'the UI shows status 200')
    const body = await liveResponse.locator('.highlight-code pre').first().innerText()
    t.same(JSON.parse(body), { message: 'Hello Chromium' }, 'the UI shows the greeting as the response body')
    const headers = await liveResponse.locator('.headerline').allInnerTexts()
    t.ok(headers.some((line) => /content-type: application\/json/.test(line)), 'the UI shows a JSON content type')
    t.ok(headers.some((line) => /x-request-id: \S+/.test(line)), 'the UI shows the x-request-id header')
  })

  await t.test('a name longer than 255 characters is refused', async (t) => {
    const tooLong = 'a'.repeat(256)
    await nameInput.fill(tooLong)
    await op.getByRole('button', { name: 'Execute' }).click()
    // Swagger UI checks the documented maxLength itself and never sends the request, so the server's
    // 400 'Validation failed' problem (covered by greeting.test.ts) cannot be shown here: what a person
    // sees is Swagger UI's own validation error, quoting the limit from the OpenAPI document.
    const errors = op.locator('.validation-errors')
    await errors.waitFor({ state: 'visible' })
    t.match(await errors.innerText(), /For 'name': Value must be no longer than 255 characters/, 'the UI explains the limit')
    t.match(await nameInput.getAttribute('class'), /\binvalid\b/, 'the name input is marked invalid')
    t.equal(log.requests.filter((r) => r.includes(tooLong)).length, 0, 'no request is sent with the too long name')
    const status = await liveResponse.locator('.response-col_status').innerText()
    t.equal(status.trim(), '200', 'the previous response stays shown')
  })

  await op.scrollIntoViewIfNeeded()
  await page.screenshot({ path: SCREENSHOT, fullPage: true })

  t.same(log.requests.filter((r) => !r.startsWith(`${url}/`)), [], 'every request goes to the server itself (no CDN)')
  const bundle = `${url}/docs/static/swagger-ui-bundle.js`
  t.ok(log.requests.some((r) => r.startsWith(bundle)), 'the Swagger UI bundle comes from the server')
  t.same(log.failed, [], 'no request failed')
  t.same(log.errorResponses, [], 'no request answered with an error status')
  t.same(log.errors, [], 'no console errors and no page errors')
  t.same(log.logoCspErrors, [], 'the CSP does not block the Swagger logo\'s inline <style>')
})

t.test('Swagger UI at /docs, without the trailing slash, renders too', async (t) => {
  if (browser === undefined) return
  const { app, url } = await listen(t)
  const { page, log } = await openPage(browser)

  // ignoreTrailingSlash makes /docs the same route as /docs/ (no redirect), and the page's assets
  // resolve to /docs/static/... either way.
  const res = await page.goto(`${url}/docs`)
  t.equal(res?.status(), 200, '/docs answers 200 without a redirect')
  t.equal(page.url(), `${url}/docs`, 'the address stays /docs')
  await page.locator('#operations-greeting_v2-getGreetingV2').waitFor({ state: 'visible' })
  const { operations } = await documentedOperations(app)
  const documented = operations.map((op) => `${op.method} ${op.path}`).sort()
  t.same(await renderedOperations(page), documented, 'every operation is listed')
  t.same(log.requests.filter((r) => !r.startsWith(`${url}/`)), [], 'every request goes to the server itself')
  t.same(log.failed, [], 'no request failed')
  t.same(log.errors, [], 'no console errors and no page errors')
})

t.test('Swagger UI renders when reached over plain HTTP by a host name', async (t) => {
  if (browser === undefined) return
  const { url } = await listen(t)
  const origin = `http://${HOST}:${new URL(url).port}`
  const { page, log } = await openPage(browser)

  const res = await page.goto(`${origin}/docs/`)
  t.equal(res?.status(), 200, '/docs/ answers 200')
  t.equal(page.url(), `${origin}/docs/`, 'the page itself stays on plain HTTP')
  const csp = res?.headers()['content-security-policy'] ?? ''
  t.notMatch(csp, /upgrade-insecure-requests/, 'the CSP keeps plain HTTP on plain HTTP')
  const elsewhere = log.requests.filter((r) => !r.startsWith(`${origin}/`))
  t.same(elsewhere, [], 'every request goes to the server as addressed, over http')
  t.same(log.failed, [], 'no request failed')
  await page.locator('.opblock').first().waitFor({ state: 'visible' })
  t.ok(await page.locator('.opblock').count() > 0, 'the operations are listed')
})
