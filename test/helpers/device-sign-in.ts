/**
 * A person at the development identity provider's pages (`mrmat-ts-api-fastify dev`), with plain HTTP: a cookie jar
 * and redirects followed by hand, as a browser would. Enters the user code the client printed, confirms, types a user
 * name on the sign-in page; consent is given by the provider itself.
 */
export async function signInDevice(verificationUri: string, userCode: string, name: string): Promise<string> {
  const cookies = new Map<string, string>()
  const request = async (url: URL, form?: Record<string, string>) => {
    const res = await fetch(url, {
      method: form === undefined ? 'GET' : 'POST',
      redirect: 'manual',
      headers: { cookie: [...cookies].map(([key, value]) => `${key}=${value}`).join('; ') },
      ...(form === undefined ? {} : { body: new URLSearchParams(form) }),
      signal: AbortSignal.timeout(10_000),
    })
    for (const cookie of res.headers.getSetCookie()) {
      const [pair = ''] = cookie.split(';')
      const at = pair.indexOf('=')
      if (/expires=Thu, 01 Jan 1970/i.test(cookie)) cookies.delete(pair.slice(0, at).trim())
      else cookies.set(pair.slice(0, at).trim(), pair.slice(at + 1).trim())
    }
    return { res, url, body: await res.text() }
  }
  const follow = async (page: Awaited<ReturnType<typeof request>>) => {
    let current = page
    for (let hops = 0; current.res.status >= 300 && current.res.status < 400; hops++) {
      const location = current.res.headers.get('location')
      if (location === null || hops > 10) throw new Error(`sign-in stuck at ${current.url.href}`)
      current = await request(new URL(location, current.url))
    }
    return current
  }
  const start = new URL(verificationUri)
  const input = await request(start)
  const xsrf = /name="xsrf" value="([^"]+)"/.exec(input.body)?.[1]
  if (xsrf === undefined) throw new Error(`no xsrf field on ${start.href}: ${input.body}`)
  let page = await follow(await request(start, { xsrf, user_code: userCode, confirm: 'yes' }))
  if (!page.body.includes('name="login"')) throw new Error(`no sign-in form after the code: ${page.body}`)
  if (!page.body.includes('Type any user name')) throw new Error(`not the plain sign-in page: ${page.body}`)
  page = await follow(await request(page.url, { login: name }))
  if (!page.body.includes('id="device-success"')) throw new Error(`the sign-in did not complete: ${page.body}`)
  return page.body
}
