// The status bar: what trades where (a LIVE engine cannot be taken for anything else),
// the trading mode (a banner unless ACTIVE), each component's readiness, the age of the
// market data, the stream's connection state, the symbol selector and the session.
//
// Where each figure comes from:
// - mode and its reason: the stream's `account` events (TradingModeChanged carries them)
//   are applied at once, then /health/ready is re-read; also re-read on 'resync'.
// - market data age: the time since the stream's last `market` quote for the symbol,
//   counted in the browser (no request).
// - component readiness (journal, market, venue, database, auth, cache): no stream event
//   carries it, so /health/ready is read every READY_POLL_MS; it is the only polling.
import { html, useEffect, useState, useCallback, useRef } from '../html.js'
import { store, useStore } from '../store.js'
import { api, ApiError, errorText, logout } from '../api.js'
import { resyncCount, useEvent } from '../stream.js'

const READY_POLL_MS = 5000

const TRADING = {
  live: ['LIVE — real money', 'badge badge-live', 'Binance spot with real funds'],
  testnet: ['TESTNET', 'badge badge-warn', 'Binance spot testnet: no real funds'],
  paper: [
    'PAPER · Binance data',
    'badge badge-ok',
    "Binance's market data, simulated venue: no real funds",
  ],
  sim: ['SIM', 'badge badge-ok', 'simulated market and venue: no real funds'],
}

const MODE_TEXT = {
  READONLY: 'READONLY: new orders are refused; cancels work.',
  MAINTENANCE: 'MAINTENANCE: new orders are refused; cancels work; the engine reports not ready.',
  HALTED: 'HALTED: the circuit breaker stopped trading; new orders are refused.',
}

const CONN_TEXT = {
  connecting: 'connecting…',
  open: 'live',
  reconnecting: 'reconnecting…',
  lost: 'lost — retrying',
}

function modeClass(mode) {
  if (mode === 'ACTIVE') return 'badge badge-ok'
  if (mode === 'HALTED') return 'badge badge-bad'
  return mode ? 'badge badge-warn' : 'badge'
}

const NOMINAL = ['ok', 'connected', 'disabled', 'not_configured']

function componentClass(c) {
  if (!c.ok) return 'badge badge-bad'
  return NOMINAL.includes(c.status) ? 'badge badge-ok' : 'badge badge-warn'
}

function ageText(ms) {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`
  if (ms < 120000) return `${(ms / 1000).toFixed(1)} s`
  return `${Math.round(ms / 60000)} min`
}

function useReadiness() {
  const [ready, setReady] = useState(null)
  const [error, setError] = useState(null)
  // Mode changes seen on the stream: a readiness answer to a request sent before the
  // newest one is older than it and must not put the previous mode back.
  const modeEvents = useRef(0)
  const refresh = useCallback(async () => {
    const sentAfter = modeEvents.current
    let body
    try {
      body = await api('/health/ready')
    } catch (err) {
      // 503 still carries the readiness body: not ready is a state to show, not an error
      if (err instanceof ApiError && err.body && err.body.components) body = err.body
      else {
        setError(err)
        return
      }
    }
    setError(null)
    setReady(body)
    if (modeEvents.current === sentAfter) {
      store.set({ mode: body.mode, modeReason: body.mode_reason || null })
    }
  }, [])
  useEffect(() => {
    refresh()
    const timer = setInterval(refresh, READY_POLL_MS)
    return () => clearInterval(timer)
  }, [refresh])
  useEvent(['account', 'resync'], (data, type) => {
    if (type === 'account' && data && data.event !== 'TradingModeChanged') return
    if (type === 'account' && data.mode) {
      modeEvents.current++
      store.set({ mode: data.mode, modeReason: data.reason || null })
    }
    refresh()
  })
  return [ready, error]
}

function useQuoteAge(symbol) {
  const last = useRef(null) // performance.now() of the last quote for `symbol`
  const [now, setNow] = useState(() => performance.now())
  useEffect(() => {
    last.current = null
  }, [symbol])
  useEvent('market', (data) => {
    if (data && data.symbol === symbol) last.current = performance.now()
  })
  useEffect(() => {
    const timer = setInterval(() => setNow(performance.now()), 500)
    return () => clearInterval(timer)
  }, [])
  return last.current === null ? null : now - last.current
}

function ModeBanner({ mode, reason }) {
  if (!mode || mode === 'ACTIVE') return null
  const text = MODE_TEXT[mode] || `${mode}: new orders may be refused.`
  return html`<div
    class=${`status-banner status-banner-${mode.toLowerCase()}`}
    role="alert"
    data-testid="status-banner"
    data-mode=${mode}
  >
    ${text}${reason ? html` Reason: <span data-testid="status-banner-reason">${reason}</span>` : null}
  </div>`
}

function ConnBanner({ conn }) {
  if (conn !== 'reconnecting' && conn !== 'lost') return null
  const text =
    conn === 'lost'
      ? 'The live stream is lost: the engine cannot be reached. Retrying; figures may be out of date.'
      : 'The live stream dropped: reconnecting…'
  return html`<div
    class=${`status-banner status-banner-conn status-banner-${conn}`}
    role="status"
    data-testid="conn-banner"
  >
    ${text}
  </div>`
}

function SymbolSelect() {
  const symbols = useStore((s) => s.symbols)
  const symbol = useStore((s) => s.symbol)
  if (symbols.length === 0) return null
  return html`<span class="status-item">
    <label class="status-label" for="status-symbol">Symbol</label>
    <select
      id="status-symbol"
      data-testid="status-symbol"
      value=${symbol}
      onChange=${(e) => store.set({ symbol: e.currentTarget.value })}
    >
      ${symbols.map((s) => html`<option value=${s}>${s}</option>`)}
    </select>
  </span>`
}

function Session() {
  const auth = useStore((s) => s.auth)
  const [error, setError] = useState(null)
  if (!auth.enabled || !auth.me) return null
  const out = async () => {
    try {
      await logout()
    } catch (err) {
      setError(err)
    }
  }
  return html`<span class="status-item">
    <span class="status-user" data-testid="status-user">${auth.me.name} (${auth.me.role})</span>
    <button type="button" class="btn btn-small" data-testid="logout" onClick=${out}>Log out</button>
    ${error ? html`<span class="error-line" role="alert">${errorText(error)}</span>` : null}
  </span>`
}

export function StatusBar() {
  const conn = useStore((s) => s.conn)
  const mode = useStore((s) => s.mode)
  const modeReason = useStore((s) => s.modeReason)
  const symbol = useStore((s) => s.symbol)
  const [ready, readyError] = useReadiness()
  // How many times the views were told to re-fetch (a data attribute for tests and for
  // anyone inspecting the page: each (re)connect and each `reset` adds one).
  const [resyncs, setResyncs] = useState(resyncCount)
  useEvent('resync', () => setResyncs(resyncCount()))
  const age = useQuoteAge(symbol)
  const trading = ready ? TRADING[ready.trading] : null
  const live = ready && ready.trading === 'live'
  const components = ready ? Object.entries(ready.components || {}) : []
  const market = ready && ready.components ? ready.components.market : null
  const stale = age === null || age > 5000 || conn !== 'open'
  useEffect(() => {
    if (ready && ready.trading) {
      document.title = live ? 'LIVE — VeloZ (real money)' : `VeloZ · ${ready.trading}`
    }
  }, [ready && ready.trading])

  return html`<div class="status">
    <header
      class=${`status-bar ${live ? 'status-live' : ''}`}
      data-testid="status-bar"
      aria-label="Engine status"
    >
      <span class="status-brand">VeloZ</span>
      ${trading
        ? html`<span
            class=${trading[1]}
            data-testid="status-trading"
            data-trading=${ready.trading}
            title=${trading[2]}
            >${trading[0]}</span
          >`
        : null}
      <span class="status-item">
        <span class="status-label">Mode</span>
        <span class=${modeClass(mode)} data-testid="status-mode" title=${modeReason || ''}
          >${mode || '…'}</span
        >
      </span>
      <span class="status-item">
        <span class="status-label">Stream</span>
        <span class=${`badge status-conn-${conn}`} data-testid="status-conn" data-state=${conn}
          data-resyncs=${resyncs}
          >${CONN_TEXT[conn] || conn}</span
        >
      </span>
      <span class="status-item">
        <span class="status-label">Market</span>
        <span data-testid="status-source">${ready ? ready.market_source : '…'}</span>
        <span
          class=${`num ${stale ? 'neg' : ''}`}
          data-testid="status-market-age"
          title=${market ? market.detail : ''}
          >${age === null ? (market ? market.status : '…') : ageText(age)}</span
        >
      </span>
      <span class="status-item">
        <span class="status-label">Venue</span>
        <span data-testid="status-venue"
          >${ready && ready.components && ready.components.venue
            ? ready.components.venue.detail
            : '…'}</span
        >
      </span>
      <span class="status-components" data-testid="status-components" aria-label="Components">
        ${components.map(
          ([name, c]) =>
            html`<span
              class=${componentClass(c)}
              data-testid=${`status-component-${name}`}
              data-ok=${c.ok ? 'true' : 'false'}
              data-status=${c.status}
              title=${`${name}: ${c.status}${c.detail ? ` — ${c.detail}` : ''}`}
              >${NOMINAL.includes(c.status) ? name : `${name}: ${c.status}`}</span
            >`,
        )}
      </span>
      <${SymbolSelect} />
      <span class="status-spacer"></span>
      ${readyError
        ? html`<span class="error-line" role="alert" data-testid="status-error"
            >${errorText(readyError)}</span
          >`
        : null}
      <${Session} />
    </header>
    <${ModeBanner} mode=${mode} reason=${modeReason} />
    <${ConnBanner} conn=${conn} />
  </div>`
}
