// The app-wide state: a tiny observable object (no library). Views read it with
// `useStore(selector)`; only the shell (app.js, api.js, stream.js, status/login views)
// writes the keys below, views keep their own data in their own component state.
//
//   auth:   { enabled, loggedIn, me: {kind, name, role} | null, expired, checked }
//             enabled: the engine has authentication on (GET /api/auth/me answered 401
//                      without a token; with auth off it answers 200 "anonymous")
//             expired: the session ended on its own (a refresh failed): the login form is
//                      shown OVER the app, which stays mounted with what was typed in it
//             checked: the first /api/auth/me answer has arrived
//   conn:   'connecting' | 'open' | 'reconnecting' | 'lost'   (the SSE stream, stream.js)
//   mode:   'ACTIVE' | 'READONLY' | 'MAINTENANCE' | 'HALTED' | ... | null (not known yet)
//   modeReason: string | null
//   symbols: string[]   symbol: string (the selected one; views follow it)
import { useState, useEffect, useRef } from './html.js'

let state = {
  auth: { enabled: false, loggedIn: false, me: null, expired: false, checked: false },
  conn: 'connecting',
  mode: null,
  modeReason: null,
  symbols: [],
  symbol: '',
}
const listeners = new Set()

export const store = {
  get() {
    return state
  },
  // A shallow merge of `patch` into the state; listeners run when anything changed.
  set(patch) {
    const next = { ...state, ...patch }
    if (Object.keys(patch).every((k) => Object.is(state[k], next[k]))) return
    state = next
    for (const fn of [...listeners]) fn(state)
  },
  subscribe(fn) {
    listeners.add(fn)
    return () => listeners.delete(fn)
  },
}

function shallowEqual(a, b) {
  if (Object.is(a, b)) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  const ka = Object.keys(a)
  if (ka.length !== Object.keys(b).length) return false
  return ka.every((k) => Object.is(a[k], b[k]))
}

// A hook: the selector's result, re-rendering when it changes (shallow comparison, so a
// selector may return a small object or array built from the state).
export function useStore(selector) {
  const [value, setValue] = useState(() => selector(state))
  const selectorRef = useRef(selector)
  selectorRef.current = selector
  const valueRef = useRef(value)
  valueRef.current = value
  useEffect(() => {
    const check = (s) => {
      const next = selectorRef.current(s)
      if (!shallowEqual(next, valueRef.current)) {
        valueRef.current = next
        setValue(() => next)
      }
    }
    check(state)
    return store.subscribe(check)
  }, [])
  return value
}

const RANKS = { viewer: 1, trader: 2, admin: 3 }

// May the current user do what needs `role` ('viewer' | 'trader' | 'admin')?
// Everything is allowed when authentication is off. Use it inside a component that
// re-renders on auth changes: `const me = useStore((s) => s.auth)` then `can('trader')`.
export function can(role) {
  const { auth } = state
  if (!auth.enabled) return true
  if (!auth.me) return false
  return (RANKS[auth.me.role] || 0) >= (RANKS[role] || 99)
}
