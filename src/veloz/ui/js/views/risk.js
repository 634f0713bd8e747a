// Risk: the limits in force with their source and sha256 (/api/risk/limits), the risk state
// (/api/risk/status: mode, breaker, VaR, leverage, concentration, drawdown, utilisation,
// denials), and for admins the limits reload and the mode commands, each behind a confirm.
import { html, useState } from '../html.js'
import { api, errorText } from '../api.js'
import { can, useStore } from '../store.js'
import { useResource } from '../resource.js'
import { ErrorLine, Panel, confirmAction, fmtTime } from '../ui.js'
import { Stats, percent, shown } from './portfolio.js'

const SYMBOL_FIELDS = [
  ['min_qty', 'Min qty'],
  ['max_qty', 'Max qty'],
  ['min_notional', 'Min notional'],
  ['max_notional', 'Max notional'],
  ['price_band_pct', 'Price band %'],
  ['max_position_qty', 'Max position qty'],
  ['max_position_notional', 'Max position notional'],
  ['max_open_orders', 'Max open orders'],
]

const ACTIONS = [
  {
    id: 'reload',
    path: '/api/admin/reload-config',
    label: 'Reload limits',
    confirm: 'Reload the risk limits from their file? New limits apply from the next order; an invalid file leaves the limits in force.',
  },
  {
    id: 'maintenance',
    path: '/api/admin/maintenance',
    label: 'Maintenance',
    confirm: 'Enter MAINTENANCE? New orders are refused (cancels still work) and the engine reports not ready.',
  },
  {
    id: 'ready',
    path: '/api/admin/ready',
    label: 'Ready',
    confirm: 'Leave MAINTENANCE? (Any other mode is left as it is.)',
  },
  {
    id: 'readonly',
    path: '/api/admin/readonly',
    label: 'Read-only',
    confirm: 'Switch to READONLY? New orders are refused (cancels still work); the mode survives a restart.',
  },
  {
    id: 'readwrite',
    path: '/api/admin/readwrite',
    label: 'Read-write',
    confirm: 'Leave READONLY? New orders are accepted again.',
  },
  {
    id: 'reset-breaker',
    path: '/api/admin/reset-breaker',
    label: 'Reset breaker',
    confirm: 'Close the circuit breaker? A HALTED engine trades again.',
  },
]

// "no limit" for a field the file leaves empty.
function limit(value) {
  return value === null || value === undefined ? '—' : String(value)
}

function answerText(action, answer) {
  if (action.id === 'reload') {
    return `Limits reloaded from ${answer.source ?? 'the built-in defaults'} (sha256 ${answer.sha256 ?? '—'}) at ${fmtTime(answer.loaded_at_ns)}; mode ${answer.mode}.`
  }
  return `${action.label}: mode ${answer.mode}${answer.changed ? ' (changed)' : ' (unchanged)'}.`
}

function LimitsPanel({ limits }) {
  if (!limits) return null
  const l = limits.limits
  const rows = [['defaults', l.defaults || {}], ...Object.entries(l.symbols || {})]
  return html`<div>
    <${Stats}
      testid="risk-limits-source"
      label="Where the limits come from"
      items=${[
        ['Source', limits.source ?? 'built-in defaults (no file)', 'risk-source'],
        ['Loaded (UTC)', fmtTime(limits.loaded_at_ns), 'risk-loaded-at'],
        ['Order rate', limits.order_rate_limit == null ? 'no limit' : `${limits.order_rate_limit} / s`],
        ['Max open orders, all symbols', limit(l.max_open_orders)],
        ['Drawdown warning / critical %', `${limit(l.drawdown_warning_pct)} / ${limit(l.drawdown_critical_pct)}`],
      ]}
    />
    <p>sha256 <code data-testid="risk-sha256">${limits.sha256 ?? '—'}</code></p>
    <table class="data risk-limits" data-testid="risk-limits">
      <caption>Order and position limits (— no limit; a symbol's row overrides the defaults where it says)</caption>
      <thead>
        <tr><th scope="col">Applies to</th>${SYMBOL_FIELDS.map(([, title]) => html`<th scope="col" class="num">${title}</th>`)}</tr>
      </thead>
      <tbody>
        ${rows.map(
          ([name, row]) => html`<tr key=${name}>
            <th scope="row">${name}</th>
            ${SYMBOL_FIELDS.map(([field]) =>
              name !== 'defaults' && row[field] == null
                ? html`<td class="num muted">default</td>`
                : html`<td class="num">${limit(row[field])}</td>`,
            )}
          </tr>`,
        )}
      </tbody>
    </table>
    <h3 class="risk-subhead">Circuit breaker triggers</h3>
    <${Stats}
      testid="risk-breaker-limits"
      label="Circuit breaker triggers"
      items=${Object.entries(l.breaker || {}).map(([field, value]) => [field, limit(value)])}
    />
  </div>`
}

function breakerText(b) {
  const trips = `${b.trips} trip${b.trips === 1 ? '' : 's'}`
  if (!b.tripped) return `closed (${trips})`
  const until = b.until_ns ? ` until ${fmtTime(b.until_ns)} UTC` : ''
  return `TRIPPED: ${b.reason}${until} (${trips})`
}

function StatusPanel({ status }) {
  if (!status) return html`<p class="muted">Loading…</p>`
  const denials = Object.entries(status.denials || {})
  return html`<div>
    <${Stats}
      testid="risk-status"
      label="Risk state"
      items=${[
        ['Mode', `${status.mode}${status.mode_reason ? ` — ${status.mode_reason}` : ''}`, 'risk-mode'],
        ['Breaker', html`<span class=${status.breaker.tripped ? 'neg' : ''}>${breakerText(status.breaker)}</span>`, 'risk-breaker'],
        ['Open orders / max', `${status.open_orders} / ${limit(status.max_open_orders)}`],
        ['Equity / peak', `${shown(status.equity)} / ${shown(status.peak_equity)}`],
        ['Drawdown from peak', percent(status.drawdown), 'risk-drawdown'],
        ['VaR 95 % / 99 % (60 s)', `${varText(status.var_95)} / ${varText(status.var_99)} of equity`, 'risk-var'],
        ['Equity samples', String(status.equity_samples)],
        ['Leverage gross / net', `${shown(status.gross_leverage)} / ${shown(status.net_leverage)}`, 'risk-leverage'],
        ['Largest position share', percent(status.largest_position_share), 'risk-concentration'],
        ['Concentration (HHI)', shown(status.concentration_hhi)],
      ]}
    />
    <div class="split-2 risk-split">
      <table class="data risk-utilisation" data-testid="risk-utilisation">
        <caption>Utilisation by symbol</caption>
        <thead>
          <tr><th scope="col">Symbol</th><th scope="col" class="num">Position</th>
            <th scope="col" class="num">Max position</th><th scope="col" class="num">Open buy</th>
            <th scope="col" class="num">Open sell</th><th scope="col" class="num">Open orders / max</th></tr>
        </thead>
        <tbody>
          ${status.symbols.map(
            (s) => html`<tr key=${s.symbol}>
              <th scope="row">${s.symbol}</th>
              <td class="num">${shown(s.position_qty)}</td>
              <td class="num">${limit(s.max_position_qty)}</td>
              <td class="num">${shown(s.open_buy_qty)}</td>
              <td class="num">${shown(s.open_sell_qty)}</td>
              <td class="num">${s.open_orders} / ${limit(s.max_open_orders)}</td>
            </tr>`,
          )}
        </tbody>
      </table>
      <table class="data risk-denials" data-testid="risk-denials">
        <caption>Denials by reason</caption>
        <tbody>
          ${denials.length === 0
            ? html`<tr><td>None.</td></tr>`
            : denials.map(([reason, count]) => html`<tr key=${reason}><th scope="row">${reason}</th><td class="num">${count}</td></tr>`)}
        </tbody>
      </table>
    </div>
  </div>`
}

// VaR is a float fraction of equity (a statistic, not money): shown as a percentage.
function varText(value) {
  const n = Number(value)
  return Number.isFinite(n) ? `${(n * 100).toFixed(3)} %` : '—'
}

function AdminActions({ onDone }) {
  const [busy, setBusy] = useState(false)
  const [answer, setAnswer] = useState(null)
  const [error, setError] = useState(null)

  const run = async (action) => {
    if (!(await confirmAction(action.confirm))) return
    setBusy(true)
    setError(null)
    setAnswer(null)
    try {
      setAnswer(answerText(action, await api(action.path, { method: 'POST' })))
    } catch (err) {
      setError(errorText(err))
    } finally {
      setBusy(false)
      onDone()
    }
  }

  return html`<div class="risk-admin">
    <div class="risk-actions form-row" role="group" aria-label="Admin actions">
      ${ACTIONS.map(
        (a) => html`<button type="button" class="btn" key=${a.id} data-testid=${`risk-action-${a.id}`}
                            disabled=${busy} onClick=${() => run(a)}>${a.label}</button>`,
      )}
    </div>
    ${answer ? html`<p class="risk-answer" role="status" data-testid="risk-answer">${answer}</p>` : null}
    <${ErrorLine} error=${error} testid="risk-action-error" />
  </div>`
}

export function RiskView() {
  useStore((s) => s.auth) // re-render when the user (and so `can`) changes
  const { data, error, refresh } = useResource(['/api/risk/limits', '/api/risk/status'], {
    // Mode changes and balances are `account` events, drawdown levels `risk` events; fills
    // and order updates move the utilisation. 'resync': after a reconnect or a `reset`.
    events: ['account', 'risk', 'fill', 'order_update', 'resync'],
    // Equity, drawdown and leverage move with quotes: re-read at most once a second.
    marketGapMs: 1000,
  })
  const [limits, status] = data || [null, null]

  return html`<div class="risk-view" data-testid="risk-view">
    <${ErrorLine} error=${error} testid="risk-error" />
    ${can('admin')
      ? html`<${Panel} title="Admin"><${AdminActions} onDone=${refresh} /><//>`
      : null}
    <${Panel} title="Risk state"><${StatusPanel} status=${status} /><//>
    <${Panel} title="Limits in force"><${LimitsPanel} limits=${limits} /><//>
  </div>`
}
