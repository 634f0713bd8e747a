// Answers a view reads from the engine and keeps current with the stream: the portfolio's
// positions and account, the risk view's limits and status.
import { useState, useEffect, useRef, useCallback } from './html.js'
import { api, errorText } from './api.js'
import { useEvent } from './stream.js'

// Coalesced refreshes: `request(gapMs)` runs `load` now, or once when the running load ends,
// or (with gapMs > 0) no sooner than gapMs after the previous run started. Stream events
// can arrive in bursts (a fill is a `fill` and an `order_update`; quotes every few ms): this
// keeps one request in flight and never more than one queued.
export function useRefresher(load) {
  const loadRef = useRef(load)
  loadRef.current = load
  const state = useRef({ running: false, pending: false, last: 0, timer: null, live: true })

  const run = useCallback(() => {
    const s = state.current
    s.timer = null
    if (!s.live) return
    if (s.running) {
      s.pending = true
      return
    }
    s.running = true
    s.last = Date.now()
    Promise.resolve(loadRef.current()).finally(() => {
      s.running = false
      if (s.pending && s.live) {
        s.pending = false
        run()
      }
    })
  }, [])

  const request = useCallback(
    (gapMs = 0) => {
      const s = state.current
      if (s.running) {
        s.pending = true
        return
      }
      const wait = Math.max(0, s.last + gapMs - Date.now())
      if (s.timer !== null) {
        if (wait > 0) return
        clearTimeout(s.timer)
      }
      if (wait === 0) run()
      else s.timer = setTimeout(run, wait)
    },
    [run],
  )

  useEffect(() => {
    const s = state.current
    s.live = true
    return () => {
      s.live = false
      if (s.timer !== null) clearTimeout(s.timer)
    }
  }, [])
  return request
}

// The answers of GET `paths` (read together), read when the view mounts, again at once on
// each of the stream's `events`, and on `market` (quotes) no more than once every
// `marketGapMs` (not at all without it). Returns { data, error, refresh }:
// - data: null until a read succeeded, then the answers of the last one that did, in the
//   order of `paths` (a failed read keeps them);
// - error: the last read's failure in words, null once one succeeded;
// - refresh(): read again at once (coalesced with the stream's refreshes).
// `onLoad(answers)`, if given, runs after each successful read.
export function useResource(paths, { events, marketGapMs = null, onLoad = null }) {
  const [data, setData] = useState(null)
  const [error, setError] = useState(null)

  const request = useRefresher(async () => {
    try {
      const answers = await Promise.all(paths.map((path) => api(path)))
      setData(answers)
      if (onLoad) onLoad(answers)
      setError(null)
    } catch (err) {
      setError(errorText(err))
    }
  })
  const refresh = useCallback(() => request(0), [request])

  useEffect(() => {
    request(0)
  }, [request])
  useEvent(events, refresh)
  useEvent('market', () => {
    if (marketGapMs !== null) request(marketGapMs)
  })
  return { data, error, refresh }
}
