// The dashboard's shell: status bar, navigation tabs (hash routes), the views, and the
// login form when authentication is on.
//   #/trade (default)  MarketView + OrderTicket side by side, Blotter below
//   #/portfolio  #/risk  #/strategies  #/research
import { html, render, useEffect, useState } from './html.js'
import { store, useStore } from './store.js'
import { api, checkAuth, errorText } from './api.js'
import { startStream, stopStream } from './stream.js'
import { StatusBar } from './views/status.js'
import { LoginView } from './views/login.js'
import { MarketView } from './views/market.js'
import { OrderTicket } from './views/ticket.js'
import { Blotter } from './views/blotter.js'
import { PortfolioView } from './views/portfolio.js'
import { RiskView } from './views/risk.js'
import { StrategiesView } from './views/strategies.js'
import { ResearchView } from './views/research.js'

const TABS = [
  ['trade', 'Trade'],
  ['portfolio', 'Portfolio'],
  ['risk', 'Risk'],
  ['strategies', 'Strategies'],
  ['research', 'Research'],
]

function currentRoute() {
  const name = window.location.hash.replace(/^#\/?/, '').split(/[/?]/)[0]
  return TABS.some(([id]) => id === name) ? name : 'trade'
}

function useRoute() {
  const [route, setRoute] = useState(currentRoute)
  useEffect(() => {
    const onHash = () => setRoute(currentRoute())
    window.addEventListener('hashchange', onHash)
    return () => window.removeEventListener('hashchange', onHash)
  }, [])
  return route
}

function Tabs({ route }) {
  return html`<nav class="tabs" aria-label="Views">
    ${TABS.map(
      ([id, label]) =>
        html`<a
          href=${`#/${id}`}
          class=${`tab ${route === id ? 'tab-active' : ''}`}
          aria-current=${route === id ? 'page' : undefined}
          data-testid=${`tab-${id}`}
          >${label}</a
        >`,
    )}
  </nav>`
}

function TradeView({ symbol }) {
  return html`<div class="trade-layout">
    <div class="trade-top">
      <div class="trade-market"><${MarketView} symbol=${symbol} /></div>
      <div class="trade-ticket"><${OrderTicket} symbol=${symbol} /></div>
    </div>
    <div class="trade-blotter"><${Blotter} symbol=${symbol} /></div>
  </div>`
}

function Main({ route, symbol }) {
  if (route === 'portfolio') return html`<${PortfolioView} />`
  if (route === 'risk') return html`<${RiskView} />`
  if (route === 'strategies') return html`<${StrategiesView} />`
  if (route === 'research') return html`<${ResearchView} />`
  // Views wait for a symbol: they are mounted once the symbols are known.
  return symbol ? html`<${TradeView} symbol=${symbol} />` : null
}

function App() {
  const auth = useStore((s) => s.auth)
  const symbol = useStore((s) => s.symbol)
  const route = useRoute()
  const [bootError, setBootError] = useState(null)

  useEffect(() => {
    let stop = false
    const boot = async () => {
      try {
        await checkAuth()
        setBootError(null)
      } catch (err) {
        if (stop) return
        setBootError(err)
        setTimeout(boot, 2000) // the engine is unreachable: try again
      }
    }
    boot()
    return () => {
      stop = true
    }
  }, [])

  if (!auth.checked) {
    return html`<div class="boot">
      <p>Connecting to the engine…</p>
      ${bootError ? html`<p class="error-line" role="alert">${errorText(bootError)}</p>` : null}
    </div>`
  }
  const showApp = !auth.enabled || auth.loggedIn || auth.expired
  const overlay = auth.enabled && !auth.loggedIn
  if (!showApp) return html`<${LoginView} />`
  // When the session expired the app stays mounted under the login form (inert), so what
  // was typed in it (an order in the ticket...) is still there after logging in again.
  return html`
    <div class="app" inert=${overlay ? true : undefined} aria-hidden=${overlay ? 'true' : undefined}>
      <${StatusBar} />
      <${Tabs} route=${route} />
      <main class="main" id="main" data-testid=${`view-${route}`}>
        <${Main} route=${route} symbol=${symbol} />
      </main>
    </div>
    ${overlay ? html`<${LoginView} overlay=${true} />` : null}
  `
}

// The traded symbols: /api/instruments when the engine has it, else the symbols of
// /api/risk/status, else the default one of /api/market.
async function loadSymbols() {
  let symbols = []
  try {
    const found = await api('/api/instruments')
    const list = Array.isArray(found) ? found : found.instruments || []
    symbols = list.map((i) => (typeof i === 'string' ? i : i.symbol)).filter(Boolean)
  } catch {
    // older engine or not allowed: fall back below
  }
  if (symbols.length === 0) {
    try {
      const risk = await api('/api/risk/status')
      symbols = (risk.symbols || []).map((s) => s.symbol).filter(Boolean)
    } catch {
      // fall back below
    }
  }
  if (symbols.length === 0) {
    const market = await api('/api/market')
    symbols = [market.symbol]
  }
  const current = store.get().symbol
  store.set({ symbols, symbol: symbols.includes(current) ? current : symbols[0] })
}

async function loadSymbolsUntilDone() {
  for (let delay = 1000; ; delay = Math.min(delay * 2, 10000)) {
    try {
      await loadSymbols()
      return
    } catch {
      await new Promise((resolve) => setTimeout(resolve, delay))
    }
    const { auth } = store.get()
    if (auth.enabled && !auth.loggedIn) return
  }
}

// The stream runs while there is someone to show it to: auth off, or logged in.
let streaming = false
function followSession(state) {
  const { auth } = state
  const active = auth.checked && (!auth.enabled || auth.loggedIn)
  if (active && !streaming) {
    streaming = true
    startStream()
    if (state.symbols.length === 0) loadSymbolsUntilDone()
  } else if (!active && streaming) {
    streaming = false
    stopStream()
  }
}
store.subscribe(followSession)

const root = document.getElementById('app')
root.textContent = '' // the "Loading…" placeholder: render() adds to what is there
render(html`<${App} />`, root)
