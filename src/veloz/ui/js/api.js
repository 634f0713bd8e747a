// The engine's HTTP API: JSON in and out, errors as ApiError, the session's tokens.
//
// NUMBERS: `api()` and the stream (stream.js) decode JSON with `parseJson`, which keeps
// every number's exact text: a number with a fraction or an exponent, or an integer
// beyond 2^53 (ts_ns), arrives as a STRING of the digits the server wrote ("100000.00000000",
// "0.01000", "1795943391752195074"); integers that fit (count, seq, open_orders...) stay
// numbers. So `${value}` shows a figure exactly as the server wrote it; use `Number(x)`
// only for charts, never for what is sent back (send the user's typed strings).
//
// TOKENS: kept in this module's memory only (never localStorage): a reload logs out.
import { store } from './store.js'

export class ApiError extends Error {
  constructor(status, code, message, reason = null, body = null) {
    super(message || code || `HTTP ${status}`)
    this.name = 'ApiError'
    this.status = status // HTTP status; 0 when the engine could not be reached
    this.code = code // the answer's "error" ('risk_rejected', 'network', ...)
    this.reason = reason // the answer's "reason" (risk and rate denials), or null
    this.body = body // the decoded answer, when there was one
  }
}

// JSON.parse that keeps numbers' exact text (see NUMBERS above).
const TOKEN = /"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g
export function parseJson(text) {
  const quoted = text.replace(TOKEN, (t) => {
    if (t[0] === '"') return t
    const plain = /^-?\d+$/.test(t) && Number.isSafeInteger(Number(t))
    return plain ? t : `"${t}"`
  })
  return JSON.parse(quoted)
}

let access = null
let refresh = null
let refreshing = null // the refresh in flight, shared by concurrent 401s

function setAuth(patch) {
  store.set({ auth: { ...store.get().auth, ...patch } })
}

export function hasToken() {
  return access !== null
}

// Headers that carry the session (for fetch calls made outside `api`, e.g. the stream).
export function authHeaders() {
  return access ? { Authorization: `Bearer ${access}` } : {}
}

// path + ?token=<access> when logged in (for EventSource / WebSocket, which cannot set
// headers). The token then appears in the URL: prefer `authHeaders()` where possible.
export function withToken(path) {
  if (!access) return path
  return `${path}${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(access)}`
}

async function send(path, { method = 'GET', body, query } = {}, auth = true) {
  let url = path
  if (query) {
    const params = new URLSearchParams()
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '') params.append(k, String(v))
    }
    const qs = params.toString()
    if (qs) url += `${url.includes('?') ? '&' : '?'}${qs}`
  }
  const headers = { Accept: 'application/json', ...(auth ? authHeaders() : {}) }
  const init = { method, headers, cache: 'no-store' }
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json'
    init.body = JSON.stringify(body)
  }
  let response
  try {
    response = await fetch(url, init)
  } catch {
    throw new ApiError(0, 'network', 'the engine cannot be reached')
  }
  const text = await response.text()
  let data = null
  if (text) {
    const type = response.headers.get('content-type') || ''
    if (type.includes('json')) {
      try {
        data = parseJson(text)
      } catch {
        data = null
      }
    } else {
      data = text
    }
  }
  if (!response.ok) {
    const obj = data && typeof data === 'object' ? data : {}
    const message =
      obj.message || (typeof data === 'string' && data.trim()) || response.statusText || ''
    throw new ApiError(
      response.status,
      obj.error || `http_${response.status}`,
      message,
      obj.reason ?? null,
      data,
    )
  }
  return data
}

// Renew the access token with the refresh token (once, however many callers ask at the
// same moment). True when it worked; on failure the session is over: tokens dropped,
// auth.loggedIn false and auth.expired true (the login form shows over the app).
export async function refreshSession() {
  if (!refresh) {
    endSession(true)
    return false
  }
  if (!refreshing) {
    const token = refresh
    refreshing = send('/api/auth/refresh', { method: 'POST', body: { refresh_token: token } }, false)
      .then((pair) => {
        access = pair.access_token
        refresh = pair.refresh_token
        return true
      })
      .catch(() => {
        endSession(true)
        return false
      })
      .finally(() => {
        refreshing = null
      })
  }
  return refreshing
}

function endSession(expired) {
  access = null
  refresh = null
  setAuth({ loggedIn: false, me: expired ? store.get().auth.me : null, expired })
}

export async function api(path, options = {}) {
  const used = access
  try {
    return await send(path, options)
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401 || !store.get().auth.enabled) throw err
    if (access === null && refresh === null) {
      endSession(store.get().auth.loggedIn || store.get().auth.expired)
      throw err
    }
    // Another call renewed the token meanwhile: retry with it rather than refresh again.
    const renewed = access !== null && access !== used
    if (!renewed && !(await refreshSession())) throw err
    try {
      return await send(path, options)
    } catch (again) {
      if (again instanceof ApiError && again.status === 401) endSession(true)
      throw again
    }
  }
}

// Who is calling: sets auth.enabled / me / loggedIn from GET /api/auth/me (401 → auth on,
// not logged in; 200 anonymous → auth off). Throws other errors (engine unreachable...).
export async function checkAuth() {
  try {
    const me = await send('/api/auth/me')
    const enabled = me.kind !== 'anonymous'
    setAuth({ enabled, loggedIn: enabled, me, checked: true, expired: false })
    return me
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      if (access && (await refreshSession())) return checkAuth()
      access = null
      setAuth({ enabled: true, loggedIn: false, checked: true })
      return null
    }
    throw err
  }
}

// Log in with a user id and password; on success the session is in memory and
// auth.me is who logged in. Throws ApiError (401 wrong credentials, 429 locked_out...).
export async function login(userId, password) {
  const pair = await send(
    '/api/auth/login',
    { method: 'POST', body: { user_id: userId, password } },
    false,
  )
  access = pair.access_token
  refresh = pair.refresh_token
  const me = await send('/api/auth/me')
  setAuth({ enabled: true, loggedIn: true, me, expired: false, checked: true })
  return me
}

// Log out: revoke the refresh token (best effort) and forget the session.
export async function logout() {
  const token = refresh
  endSession(false)
  if (token) {
    try {
      await send('/api/auth/logout', { method: 'POST', body: { refresh_token: token } }, false)
    } catch {
      // the tokens are gone from memory; a refresh token that could not be revoked
      // expires on its own
    }
  }
}

function show(value) {
  if (value === null || value === undefined) return ''
  if (typeof value === 'string') return value
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  try {
    return JSON.stringify(value)
  } catch {
    return String(value)
  }
}

// Words for any error, always a string: "risk_rejected: <message> (reason)".
export function errorText(err) {
  if (err === null || err === undefined) return ''
  if (err instanceof ApiError) {
    const message = show(err.message)
    let text = err.code && message !== err.code ? `${err.code}: ${message}` : message
    if (err.reason && !text.includes(`(${err.reason})`)) text += ` (${show(err.reason)})`
    return text || `HTTP ${err.status}`
  }
  if (err instanceof Error) return err.message || err.name || 'error'
  if (typeof err === 'object') {
    if (err.error || err.message) {
      return errorText(new ApiError(err.status || 0, err.error, show(err.message), err.reason))
    }
  }
  return show(err) || 'error'
}
