// The provider as oauth4webapi (a strict OAuth 2.0 / OpenID Connect client library) sees it:
// discovery, the code flow with PKCE, state and nonce through the hosted login page (a cookie
// jar, the form's hidden inputs, redirects not followed), the authorization response checked
// (state, RFC 9207 iss), the code exchange with the ID token validated (iss, aud, exp, iat,
// nonce) and its signature checked against the JWKS, UserInfo, refresh, introspection,
// revocation and client credentials for a confidential client (client_secret_basic), then the
// code flow of a public client (PKCE, no secret).
//
//   node oidc.mjs ISSUER CONFIDENTIAL_ID CONFIDENTIAL_SECRET PUBLIC_ID USERNAME PASSWORD REDIRECT_URI
//
// Prints one line per step; exits 1 with the reason on the first failure.
import * as oauth from 'oauth4webapi'

const [issuerArg, confidentialId, confidentialSecret, publicId, username, password, redirectUri] =
  process.argv.slice(2)
if (!redirectUri) {
  console.error(
    'usage: node oidc.mjs ISSUER CONFIDENTIAL_ID CONFIDENTIAL_SECRET PUBLIC_ID USERNAME PASSWORD REDIRECT_URI',
  )
  process.exit(2)
}

// oauth4webapi refuses plain-http endpoints. The provider under test runs on loopback
// (http://127.0.0.1:PORT, started by scripts/oidc-interop.sh) with no TLS, so the library is
// told to allow it; nothing here ever leaves the machine. Never do this against a real issuer.
const insecure = { [oauth.allowInsecureRequests]: true }

let stepNo = 0
async function step(name, fn) {
  stepNo += 1
  try {
    const result = await fn()
    console.log(`ok   ${String(stepNo).padStart(2)}  ${name}`)
    return result
  } catch (error) {
    console.error(`FAIL ${String(stepNo).padStart(2)}  ${name}`)
    console.error(`         ${error?.stack ?? error}`)
    if (error?.cause !== undefined) {
      console.error(`         cause: ${JSON.stringify(error.cause, null, 2)}`)
    }
    process.exit(1)
  }
}

function check(condition, message) {
  if (!condition) throw new Error(message)
}

function equal(actual, expected, what) {
  check(
    actual === expected,
    `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`,
  )
}

/// Rejects, or fails the step: the promise must reject with an error matching `predicate`.
async function refused(promise, predicate, what) {
  let error
  try {
    await promise
  } catch (e) {
    error = e
  }
  check(error !== undefined, `${what}: expected a refusal, it succeeded`)
  check(predicate(error), `${what}: refused with the wrong error: ${error?.stack ?? error}`)
  return error
}

// --- a browser: fetch with a cookie jar, following no redirect ------------------------------

class Browser {
  constructor() {
    this.cookies = new Map()
  }

  async request(url, init = {}) {
    const headers = new Headers(init.headers)
    if (this.cookies.size > 0) {
      headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '))
    }
    const response = await fetch(url, { ...init, headers, redirect: 'manual' })
    for (const cookie of response.headers.getSetCookie()) {
      const [pair, ...attributes] = cookie.split(';').map((s) => s.trim())
      const eq = pair.indexOf('=')
      const name = pair.slice(0, eq)
      if (attributes.some((a) => a.toLowerCase() === 'max-age=0')) {
        this.cookies.delete(name)
      } else {
        this.cookies.set(name, pair.slice(eq + 1))
      }
    }
    return response
  }
}

function decodeEntities(text) {
  return text
    .replace(/&#(\d+);/g, (_, n) => String.fromCodePoint(Number(n)))
    .replace(/&#x([0-9a-f]+);/gi, (_, n) => String.fromCodePoint(parseInt(n, 16)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&')
}

function attribute(tag, name) {
  const match = tag.match(new RegExp(`\\s${name}="([^"]*)"`))
  return match ? decodeEntities(match[1]) : undefined
}

/// The login form of a page: its action (absolute) and its fields, hidden inputs first.
function loginForm(html, pageUrl) {
  const form = html.match(/<form\b[^>]*>/)
  check(form, 'the page has a form')
  check(attribute(form[0], 'method')?.toLowerCase() === 'post', 'the form posts')
  const action = new URL(attribute(form[0], 'action') ?? '', pageUrl)
  const inputs = [...html.matchAll(/<input\b[^>]*>/g)].map((m) => m[0])
  const fields = new URLSearchParams()
  for (const input of inputs) {
    if (attribute(input, 'type') === 'hidden') {
      fields.append(attribute(input, 'name'), attribute(input, 'value') ?? '')
    }
  }
  check(fields.has('csrf'), 'the form carries a CSRF token')
  check(inputs.some((i) => attribute(i, 'name') === 'username'), 'a username input')
  check(
    inputs.some((i) => attribute(i, 'name') === 'password' && attribute(i, 'type') === 'password'),
    'a password input',
  )
  return { action, fields }
}

/// From the authorization URL to the redirect back to the client: the login page when not
/// signed in (filled and posted), or straight back when the sign-in cookie is there.
async function authorize(browser, url) {
  let response = await browser.request(url)
  if (response.status === 200) {
    check(
      response.headers.get('content-type')?.startsWith('text/html'),
      'the login page is HTML',
    )
    const { action, fields } = loginForm(await response.text(), url)
    equal(action.origin, new URL(url).origin, 'the form posts to the provider')
    fields.set('username', username)
    fields.set('password', password)
    response = await browser.request(action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: fields,
    })
    check(
      [...browser.cookies.keys()].some((k) => k.endsWith('auth_signin')),
      'the sign-in cookie is set',
    )
  }
  equal(response.status, 303, 'the answer to the authorization request')
  const location = new URL(response.headers.get('location'))
  equal(`${location.origin}${location.pathname}`, redirectUri, 'redirected to the redirect URI')
  return location
}

function authorizationUrl(as, clientId, scope, state, nonce, challenge) {
  const url = new URL(as.authorization_endpoint)
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    scope,
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString()
  return url.href
}

async function atHash(accessToken) {
  const digest = new Uint8Array(
    await crypto.subtle.digest('SHA-256', new TextEncoder().encode(accessToken)),
  )
  return Buffer.from(digest.slice(0, 16)).toString('base64url')
}

const isOAuthError = (code) => (e) => e instanceof oauth.ResponseBodyError && e.error === code
const isProcessingError = (code) => (e) =>
  e instanceof oauth.OperationProcessingError && (code === undefined || e.code === code)

// --- the run ------------------------------------------------------------------------------------

const issuer = new URL(issuerArg)

const as = await step('discovery: the metadata document names the issuer asked for', async () => {
  const response = await oauth.discoveryRequest(issuer, { ...insecure })
  const as = await oauth.processDiscoveryResponse(issuer, response)
  equal(as.authorization_response_iss_parameter_supported, true, 'iss in authorization responses')
  check(as.code_challenge_methods_supported?.includes('S256'), 'PKCE S256 supported')
  for (const endpoint of [
    'authorization_endpoint',
    'token_endpoint',
    'userinfo_endpoint',
    'jwks_uri',
    'introspection_endpoint',
    'revocation_endpoint',
  ]) {
    equal(new URL(as[endpoint]).origin, issuer.origin, endpoint)
  }
  return as
})

const confidential = { client_id: confidentialId }
const basic = oauth.ClientSecretBasic(confidentialSecret)
const browser = new Browser()

const first = await step(
  'code flow (confidential client): the login page, the form, back with code, state and iss',
  async () => {
    const verifier = oauth.generateRandomCodeVerifier()
    const challenge = await oauth.calculatePKCECodeChallenge(verifier)
    const state = oauth.generateRandomState()
    const nonce = oauth.generateRandomNonce()
    const url = authorizationUrl(
      as,
      confidentialId,
      'openid profile email offline_access',
      state,
      nonce,
      challenge,
    )
    const callback = await authorize(browser, url)
    await refused(
      Promise.resolve().then(() =>
        oauth.validateAuthResponse(as, confidential, callback, oauth.generateRandomState()),
      ),
      isProcessingError(oauth.INVALID_RESPONSE),
      'another state',
    )
    const forged = new URL(callback)
    forged.searchParams.set('iss', 'http://evil.invalid')
    await refused(
      Promise.resolve().then(() => oauth.validateAuthResponse(as, confidential, forged, state)),
      isProcessingError(oauth.INVALID_RESPONSE),
      'another iss',
    )
    const params = oauth.validateAuthResponse(as, confidential, callback, state)
    return { params, verifier, nonce }
  },
)

const tokens = await step(
  'code exchange (client_secret_basic): ID token validated with the nonce, signature checked against the JWKS, at_hash',
  async () => {
    const response = await oauth.authorizationCodeGrantRequest(
      as,
      confidential,
      basic,
      first.params,
      redirectUri,
      first.verifier,
      { ...insecure },
    )
    const result = await oauth.processAuthorizationCodeResponse(as, confidential, response, {
      expectedNonce: first.nonce,
      requireIdToken: true,
    })
    await oauth.validateApplicationLevelSignature(as, response, { ...insecure })
    const claims = oauth.getValidatedIdTokenClaims(result)
    equal(claims.iss, as.issuer, 'iss')
    equal(claims.aud, confidentialId, 'aud')
    equal(claims.nonce, first.nonce, 'nonce')
    equal(claims.preferred_username, username, 'preferred_username')
    equal(claims.at_hash, await atHash(result.access_token), 'at_hash')
    equal(result.token_type, 'bearer', 'token_type')
    equal(result.scope, 'openid profile email offline_access', 'scope')
    check(typeof result.refresh_token === 'string', 'a refresh token (offline_access)')
    return { ...result, claims }
  },
)

await step('a second authorization (signed in already) with another nonce is refused by the ID token check', async () => {
  const verifier = oauth.generateRandomCodeVerifier()
  const state = oauth.generateRandomState()
  const url = authorizationUrl(
    as,
    confidentialId,
    'openid',
    state,
    oauth.generateRandomNonce(),
    await oauth.calculatePKCECodeChallenge(verifier),
  )
  const callback = await authorize(browser, url) // no login page: straight back
  const params = oauth.validateAuthResponse(as, confidential, callback, state)
  const response = await oauth.authorizationCodeGrantRequest(
    as,
    confidential,
    basic,
    params,
    redirectUri,
    verifier,
    { ...insecure },
  )
  await refused(
    oauth.processAuthorizationCodeResponse(as, confidential, response, {
      expectedNonce: oauth.generateRandomNonce(),
    }),
    isProcessingError(oauth.JWT_CLAIM_COMPARISON),
    'a nonce that is not the request’s',
  )
})

await step('UserInfo: the subject of the ID token and the claims of profile and email', async () => {
  const response = await oauth.userInfoRequest(as, confidential, tokens.access_token, {
    ...insecure,
  })
  const info = await oauth.processUserInfoResponse(as, confidential, tokens.claims.sub, response)
  equal(info.sub, tokens.claims.sub, 'sub')
  equal(info.preferred_username, username, 'preferred_username')
  check('email_verified' in info, 'email claims with the email scope')
})

const refreshed = await step('refresh: a new access token and a rotated refresh token', async () => {
  const response = await oauth.refreshTokenGrantRequest(
    as,
    confidential,
    basic,
    tokens.refresh_token,
    { ...insecure },
  )
  const result = await oauth.processRefreshTokenResponse(as, confidential, response)
  check(result.access_token !== tokens.access_token, 'a new access token')
  check(
    typeof result.refresh_token === 'string' && result.refresh_token !== tokens.refresh_token,
    'a rotated refresh token',
  )
  return result
})

async function introspect(token) {
  const response = await oauth.introspectionRequest(as, confidential, basic, token, {
    ...insecure,
  })
  return oauth.processIntrospectionResponse(as, confidential, response)
}

await step('introspection: the refreshed access token is active, for this user and client', async () => {
  const seen = await introspect(refreshed.access_token)
  equal(seen.active, true, 'active')
  equal(seen.username, username, 'username')
  equal(seen.sub, tokens.claims.sub, 'sub')
  equal(seen.client_id, confidentialId, 'client_id')
  equal(seen.iss, as.issuer, 'iss')
})

await step('revocation of the refresh token: the session ends', async () => {
  const response = await oauth.revocationRequest(as, confidential, basic, refreshed.refresh_token, {
    ...insecure,
  })
  await oauth.processRevocationResponse(response)
  const seen = await introspect(refreshed.access_token)
  equal(seen.active, false, 'active after revocation')
  check(seen.username === undefined, 'an inactive token says nothing else')
  const again = await oauth.refreshTokenGrantRequest(
    as,
    confidential,
    basic,
    refreshed.refresh_token,
    { ...insecure },
  )
  await refused(
    oauth.processRefreshTokenResponse(as, confidential, again),
    isOAuthError('invalid_grant'),
    'the revoked refresh token',
  )
})

await step('client_credentials: the client’s own token, active, no refresh or ID token', async () => {
  const response = await oauth.clientCredentialsGrantRequest(
    as,
    confidential,
    basic,
    { scope: 'user' },
    { ...insecure },
  )
  const result = await oauth.processClientCredentialsResponse(as, confidential, response)
  equal(result.scope, 'user', 'scope')
  check(result.refresh_token === undefined && result.id_token === undefined, 'only an access token')
  const seen = await introspect(result.access_token)
  equal(seen.active, true, 'active')
  equal(seen.client_id, confidentialId, 'client_id')
  const wrong = await oauth.clientCredentialsGrantRequest(
    as,
    confidential,
    oauth.ClientSecretBasic('not the secret'),
    {},
    { ...insecure },
  )
  await refused(
    oauth.processClientCredentialsResponse(as, confidential, wrong),
    (e) =>
      (e instanceof oauth.ResponseBodyError && e.error === 'invalid_client') ||
      e instanceof oauth.WWWAuthenticateChallengeError,
    'a wrong secret',
  )
})

await step('code flow (public client, PKCE, no secret) in a new browser: ID token, then refresh', async () => {
  const client = { client_id: publicId, token_endpoint_auth_method: 'none' }
  const verifier = oauth.generateRandomCodeVerifier()
  const state = oauth.generateRandomState()
  const nonce = oauth.generateRandomNonce()
  const url = authorizationUrl(
    as,
    publicId,
    'openid profile',
    state,
    nonce,
    await oauth.calculatePKCECodeChallenge(verifier),
  )
  const callback = await authorize(new Browser(), url)
  const params = oauth.validateAuthResponse(as, client, callback, state)
  const response = await oauth.authorizationCodeGrantRequest(
    as,
    client,
    oauth.None(),
    params,
    redirectUri,
    verifier,
    { ...insecure },
  )
  const result = await oauth.processAuthorizationCodeResponse(as, client, response, {
    expectedNonce: nonce,
    requireIdToken: true,
  })
  await oauth.validateApplicationLevelSignature(as, response, { ...insecure })
  const claims = oauth.getValidatedIdTokenClaims(result)
  equal(claims.aud, publicId, 'aud')
  equal(claims.sub, tokens.claims.sub, 'the same user')
  const refreshedPublic = await oauth.processRefreshTokenResponse(
    as,
    client,
    await oauth.refreshTokenGrantRequest(as, client, oauth.None(), result.refresh_token, {
      ...insecure,
    }),
  )
  check(typeof refreshedPublic.access_token === 'string', 'refreshed')
})

console.log(`oauth4webapi: all ${stepNo} steps passed against ${as.issuer}`)
