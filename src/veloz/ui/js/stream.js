// The one Server-Sent Events connection to /api/stream, shared by every view.
//
// It is read with fetch() rather than EventSource so that the session travels in the
// Authorization header (no token in URLs), a 401 can refresh the session, and the
// connection state is ours to show:
//   'connecting'   the first connection is being made
//   'open'         events flow
//   'reconnecting' the connection dropped (engine restarting, network): a new one is being
//                  made at once — shown within milliseconds of the drop
//   'lost'         a reconnect attempt failed (engine unreachable or not ready): retried
//                  with a backoff of 0.5 s doubling up to 5 s
// A lost engine shows within 5 s even when no connection is closed (a hung process, a
// dead network path): after QUIET_MS without a byte (the sim sends quotes many times a
// second, but a quiet market may not) GET /health is asked with a PROBE_MS timeout, and
// the connection is dropped if it does not answer; a connection silent for SILENCE_MS
// (the engine writes a keep-alive comment every 10 s) is dropped anyway, and a connection
// attempt without an answer within CONNECT_MS is given up.
// It resumes with Last-Event-ID (the last journaled id seen): no journaled event is missed
// or repeated across reconnects. After every (re)connect, and after a `reset` event, it
// emits the synthetic 'resync' event: views re-fetch their REST state on it.
import { store } from './store.js'
import { authHeaders, parseJson, refreshSession } from './api.js'
import { useEffect, useRef } from './html.js'

const SILENCE_MS = 15000
const QUIET_MS = 2000
const PROBE_MS = 1500
const CONNECT_MS = 5000
const MAX_BACKOFF_MS = 5000

const handlers = new Map() // type -> Set<handler>
let lastId = null
let running = false
let abort = null
let generation = 0 // bumps on stop(): an old connection's loop ends quietly

// Subscribe to SSE event types ('order_update', 'fill', 'account', 'strategy', 'market',
// 'risk', 'reset', ... and 'resync'); handler(data, type, id). Returns the unsubscribe.
export function onEvent(types, handler) {
  const list = Array.isArray(types) ? types : [types]
  for (const t of list) {
    if (!handlers.has(t)) handlers.set(t, new Set())
    handlers.get(t).add(handler)
  }
  return () => {
    for (const t of list) handlers.get(t)?.delete(handler)
  }
}

// The hook form: subscribed while the component is mounted, always calling the latest
// `handler` (no need to memoise it).
export function useEvent(types, handler) {
  const ref = useRef(handler)
  ref.current = handler
  const key = Array.isArray(types) ? types.join(',') : types
  useEffect(() => onEvent(key.split(','), (...args) => ref.current(...args)), [key])
}

let resyncs = 0

// How many 'resync' events the stream has emitted (each (re)connect and each `reset`).
export function resyncCount() {
  return resyncs
}

function emit(type, data, id) {
  if (type === 'resync') resyncs++
  for (const fn of [...(handlers.get(type) || [])]) {
    try {
      fn(data, type, id)
    } catch (err) {
      // one view's bug must not stop the others' events; shown, not swallowed
      console.error(`stream handler for ${type} failed:`, err)
    }
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// Start the stream (idempotent). app.js starts it once the session is known and stops it
// on logout.
export function startStream() {
  if (running) return
  running = true
  const mine = ++generation
  loop(mine)
}

export function stopStream() {
  running = false
  generation++
  if (abort) abort.abort()
  abort = null
}

async function loop(mine) {
  let backoff = 500
  let opened = false
  while (running && mine === generation) {
    store.set({ conn: opened ? store.get().conn : 'connecting' })
    const result = await connectOnce(mine, () => {
      opened = true
      backoff = 500
    })
    if (!running || mine !== generation) return
    if (result === 'unauthorized') {
      if (!(await refreshSession())) {
        // the session is over: the login form shows; app.js restarts the stream after login
        running = false
        store.set({ conn: 'lost' })
        return
      }
      continue
    }
    if (result === 'dropped') {
      store.set({ conn: 'reconnecting' })
      continue // reconnect at once after a drop
    }
    // 'failed': the engine did not answer, or not with a stream
    store.set({ conn: 'lost' })
    await sleep(backoff)
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS)
    if (opened && running && mine === generation) store.set({ conn: 'reconnecting' })
  }
}

// One connection: 'dropped' when it was open and ended, 'failed' when it never opened,
// 'unauthorized' on 401.
async function connectOnce(mine, onOpen) {
  const controller = new AbortController()
  abort = controller
  const headers = { Accept: 'text/event-stream', ...authHeaders() }
  if (lastId !== null) headers['Last-Event-ID'] = String(lastId)
  let response
  const connecting = setTimeout(() => controller.abort(), CONNECT_MS)
  try {
    response = await fetch('/api/stream', { headers, cache: 'no-store', signal: controller.signal })
  } catch {
    return 'failed'
  } finally {
    clearTimeout(connecting)
  }
  if (response.status === 401) return 'unauthorized'
  if (!response.ok || !response.body) return 'failed'
  onOpen()
  store.set({ conn: 'open' })
  emit('resync', null, null)
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  let lastByte = performance.now()
  let probedAt = 0
  let probing = false
  const watchdog = setInterval(() => {
    const now = performance.now()
    if (now - lastByte > SILENCE_MS) controller.abort()
    else if (now - lastByte > QUIET_MS && now - probedAt > QUIET_MS && !probing) {
      probing = true
      probedAt = now
      fetch('/health', { cache: 'no-store', signal: AbortSignal.timeout(PROBE_MS) })
        .then((answer) => {
          if (!answer.ok) throw new Error(`HTTP ${answer.status}`)
        })
        .catch(() => controller.abort())
        .finally(() => {
          probing = false
        })
    }
  }, 500)
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done || mine !== generation) break
      lastByte = performance.now()
      buffer += value
      let end
      while ((end = buffer.match(/\r?\n\r?\n/)) !== null) {
        const frame = buffer.slice(0, end.index)
        buffer = buffer.slice(end.index + end[0].length)
        dispatch(frame)
      }
    }
  } catch {
    // aborted, or the connection broke
  } finally {
    clearInterval(watchdog)
  }
  return 'dropped'
}

function dispatch(frame) {
  let type = 'message'
  let id = null
  const data = []
  for (const line of frame.split(/\r?\n/)) {
    if (line === '' || line.startsWith(':')) continue
    const colon = line.indexOf(':')
    const field = colon < 0 ? line : line.slice(0, colon)
    let value = colon < 0 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'event') type = value
    else if (field === 'data') data.push(value)
    else if (field === 'id') id = value
  }
  if (data.length === 0) return
  if (id !== null && /^\d+$/.test(id)) lastId = id
  let parsed
  try {
    parsed = parseJson(data.join('\n'))
  } catch {
    parsed = data.join('\n')
  }
  emit(type, parsed, id)
  if (type === 'reset') emit('resync', parsed, id)
}
