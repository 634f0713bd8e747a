// Portfolio: positions (/api/positions) and balances (/api/account), kept current by the
// stream, with an equity and drawdown chart.
//
// The curve starts with the engine's own equity samples (GET /api/equity: one a minute at
// most, the newest day, drawdown from the highest sample before each) and goes on with what
// this page sees: one point per refresh of /api/positions (equity, drawdown from the
// engine's peak), kept for the session in this module so it survives switching tabs.
import { html, useState, useEffect, useRef } from '../html.js'
import { api, errorText } from '../api.js'
import { useResource } from '../resource.js'
import { ErrorLine, Panel, fmtTime } from '../ui.js'

const MAX_POINTS = 5000
// Equity points of this session: { time (UNIX s), equity, drawdown (% below the peak) }.
const equityPoints = []

// A decimal as the server wrote it: never re-formatted (no float round trip).
export function shown(value) {
  return value === null || value === undefined ? '—' : String(value)
}

// 'neg' / 'pos' / '' for the sign of a decimal's text, without parsing it.
export function signClass(value) {
  const text = shown(value)
  if (text.startsWith('-')) return 'neg'
  return /[1-9]/.test(text) ? 'pos' : ''
}

// A decimal ratio as a percentage, exactly: its text with the point moved two places
// ("0.0512" → "5.12 %"), never through a float.
export function percent(ratio) {
  const text = shown(ratio)
  const match = /^(-?)(\d+)(?:\.(\d*))?$/.exec(text)
  if (!match) return text
  const [, sign, whole, frac = ''] = match
  const padded = frac.padEnd(2, '0')
  const int = (whole + padded.slice(0, 2)).replace(/^0+(?=\d)/, '')
  const rest = padded.slice(2)
  return `${sign}${int}${rest ? `.${rest}` : ''} %`
}

// Figures as a grid of labelled values (.stats in app.css): items are [label, value, testid?].
export function Stats({ items, testid, label }) {
  return html`<dl class="stats" data-testid=${testid} aria-label=${label}>
    ${items.filter(Boolean).map(
      ([name, value, id]) => html`<div key=${name}>
        <dt>${name}</dt>
        <dd data-testid=${id}>${value}</dd>
      </div>`,
    )}
  </dl>`
}

function addPoint(equity, drawdown) {
  const value = Number(equity)
  if (!Number.isFinite(value)) return null
  const point = { time: Math.floor(Date.now() / 1000), equity: value, drawdown: -100 * Number(drawdown || 0) || 0 } // || 0: not -0
  const last = equityPoints[equityPoints.length - 1]
  if (last && last.time >= point.time) {
    point.time = last.time
    equityPoints[equityPoints.length - 1] = point
  } else {
    equityPoints.push(point)
    if (equityPoints.length > MAX_POINTS) equityPoints.shift()
  }
  return point
}

// Puts the engine's samples older than this page's first point in front of them, once.
let engineSamples = null // the number taken, once loaded
async function loadEngineSamples() {
  if (engineSamples !== null) return engineSamples
  const history = await api('/api/equity')
  const first = equityPoints.length ? equityPoints[0].time : Infinity
  const older = []
  for (const p of history.points) {
    // ts_ns arrives as the digits the engine wrote (beyond 2^53): whole seconds via BigInt.
    const time = Number(BigInt(p.ts_ns) / 1000000000n)
    if (time >= first || (older.length && time <= older[older.length - 1].time)) continue
    older.push({ time, equity: Number(p.equity), drawdown: -100 * Number(p.drawdown) || 0 })
  }
  equityPoints.unshift(...older)
  engineSamples = history.points.length
  return engineSamples
}

function EquityChart({ point }) {
  const box = useRef(null)
  const series = useRef(null)
  const [samples, setSamples] = useState(engineSamples)
  const [error, setError] = useState(null)

  useEffect(() => {
    const LC = window.LightweightCharts
    if (!LC || !box.current) return undefined
    const chart = LC.createChart(box.current, {
      autoSize: true,
      layout: { background: { type: 'solid', color: 'transparent' }, textColor: '#9aa4b2' },
      grid: { vertLines: { color: 'rgba(128,128,128,0.15)' }, horzLines: { color: 'rgba(128,128,128,0.15)' } },
      timeScale: { timeVisible: true, secondsVisible: true },
    })
    const equity = chart.addSeries(LC.LineSeries, { color: '#3b82f6', lineWidth: 2, title: 'equity' }, 0)
    const drawdown = chart.addSeries(
      LC.AreaSeries,
      {
        lineColor: '#ef4444',
        topColor: 'rgba(239,68,68,0.05)',
        bottomColor: 'rgba(239,68,68,0.35)',
        invertFilledArea: true,
        lineWidth: 1,
        title: 'drawdown %',
        priceFormat: { type: 'price', precision: 2, minMove: 0.01 },
      },
      1,
    )
    const panes = chart.panes()
    if (panes[1]) panes[1].setHeight(70)
    const draw = () => {
      equity.setData(equityPoints.map((p) => ({ time: p.time, value: p.equity })))
      drawdown.setData(equityPoints.map((p) => ({ time: p.time, value: p.drawdown })))
    }
    draw()
    series.current = { equity, drawdown }
    loadEngineSamples().then(
      (count) => {
        setSamples(count)
        if (series.current) draw()
      },
      (err) => setError(errorText(err)),
    )
    return () => {
      series.current = null
      chart.remove()
    }
  }, [])

  useEffect(() => {
    if (!point || !series.current) return
    series.current.equity.update({ time: point.time, value: point.equity })
    series.current.drawdown.update({ time: point.time, value: point.drawdown })
  }, [point])

  return html`<div>
    <div ref=${box} class="portfolio-chart" data-testid="portfolio-chart"
         data-engine-samples=${samples === null ? undefined : samples}
         role="img" aria-label="Equity (line) and drawdown from the peak in % (area)"></div>
    <${ErrorLine} error=${error} testid="portfolio-chart-error" />
    <p class="note portfolio-note">Equity (line) and drawdown from the peak in % (area below):
      the engine's samples (${samples ?? '…'}, one a minute at most, the newest day), then
      what this page has seen since it opened.</p>
  </div>`
}

function PositionsTable({ positions }) {
  return html`<table class="data portfolio-positions" data-testid="portfolio-positions">
    <thead>
      <tr>
        <th scope="col">Symbol</th><th scope="col" class="num">Qty</th><th scope="col" class="num">Avg price</th>
        <th scope="col" class="num">Mark</th><th scope="col" class="num">Notional</th>
        <th scope="col" class="num">Unrealised PnL</th><th scope="col" class="num">Realised PnL</th>
        <th scope="col" class="num">Fees</th>
      </tr>
    </thead>
    <tbody>
      ${positions.length === 0
        ? html`<tr><td colspan="8">No positions.</td></tr>`
        : positions.map(
            (p) => html`<tr key=${p.symbol} data-testid=${`position-row-${p.symbol}`}>
              <th scope="row">${p.symbol}</th>
              <td class="num" data-testid="position-qty">${shown(p.qty)}</td>
              <td class="num">${shown(p.avg_price)}</td>
              <td class="num">${shown(p.mark_price)}</td>
              <td class="num">${shown(p.notional)}</td>
              <td class=${`num ${signClass(p.unrealized_pnl)}`} data-testid="position-upnl">${shown(p.unrealized_pnl)}</td>
              <td class=${`num ${signClass(p.realized_pnl)}`} data-testid="position-rpnl">${shown(p.realized_pnl)}</td>
              <td class="num" data-testid="position-fees">${shown(p.fees)}</td>
            </tr>`,
          )}
    </tbody>
  </table>`
}

function BalancesTable({ balances }) {
  return html`<table class="data portfolio-balances" data-testid="portfolio-balances">
    <thead><tr><th scope="col">Asset</th><th scope="col" class="num">Free</th><th scope="col" class="num">Locked</th></tr></thead>
    <tbody>
      ${balances.length === 0
        ? html`<tr><td colspan="3">No balances.</td></tr>`
        : balances.map(
            (b) => html`<tr key=${b.asset} data-testid=${`balance-row-${b.asset}`}>
              <th scope="row">${b.asset}</th>
              <td class="num">${shown(b.free)}</td>
              <td class="num">${shown(b.locked)}</td>
            </tr>`,
          )}
    </tbody>
  </table>`
}

export function PortfolioView() {
  const [point, setPoint] = useState(null)
  const { data, error } = useResource(['/api/positions', '/api/account'], {
    // Positions and balances change with fills and journaled balance changes, and `locked`
    // with every order placed, cancelled or done; 'resync' follows a reconnect or a `reset`,
    // when events may have been missed.
    events: ['fill', 'account', 'order_update', 'resync'],
    // Marks (and so unrealised PnL, notional and equity) move with every quote, and the
    // stream carries quotes, not marks: re-read the engine's own valuation at most once a
    // second rather than recompute money in floating point here.
    marketGapMs: 1000,
    onLoad: ([pos]) => setPoint(addPoint(pos.equity, pos.drawdown)),
  })
  const [positions, account] = data || [null, null]

  const summary = positions
    ? html`<${Stats}
        testid="portfolio-summary"
        label="Account summary"
        items=${[
          ['Equity', shown(positions.equity), 'portfolio-equity'],
          ['Drawdown from peak', percent(positions.drawdown), 'portfolio-drawdown'],
          ['Leverage (gross)', shown(positions.leverage), 'portfolio-leverage'],
          account && ['As of (UTC)', fmtTime(account.ts_ns)],
        ]}
      />`
    : html`<p class="muted">Loading…</p>`

  return html`<div class="portfolio-view" data-testid="portfolio-view">
    <${ErrorLine} error=${error} testid="portfolio-error" />
    <${Panel} title="Equity and drawdown">
      ${summary}
      <${EquityChart} point=${point} />
    <//>
    <div class="split-2 portfolio-split">
      <${Panel} title="Positions">
        ${positions ? html`<${PositionsTable} positions=${positions.positions} />` : null}
      <//>
      <${Panel} title="Balances">
        ${account ? html`<${BalancesTable} balances=${account.balances} />` : null}
      <//>
    </div>
  </div>`
}
