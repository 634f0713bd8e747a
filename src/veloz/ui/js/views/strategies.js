// Strategies: every instance with its state, own position, realised/unrealised PnL, open
// orders and error; start / pause / resume / stop / delete as its state allows (stop and
// delete after a confirm); add one with a form generated from the chosen strategy's
// parameter schema (GET /api/strategies/catalog).
//
// Live: a `strategy` event (a lifecycle change) and a `fill` or `order_update` of one of
// a strategy's orders (its position, PnL and open-order count move) re-fetch the list;
// 'resync' (after a reconnect or a reset) does too. Nothing is polled.
// Actions need the trader role (ROUTE_ROLES in veloz/api/access.py): a viewer sees the
// list only.
import { html, useState, useEffect, useRef, useCallback } from '../html.js'
import { api } from '../api.js'
import { useStore, can } from '../store.js'
import { useEvent } from '../stream.js'
import { ErrorLine, confirmAction, Panel } from '../ui.js'
import { SchemaForm, validate, initialValues, toPayload } from '../form.js'

const enc = encodeURIComponent

// What each state allows (docs/strategies.md, Lifecycle).
const ACTIONS = {
  added: ['start', 'stop', 'delete'],
  running: ['pause', 'stop', 'delete'],
  paused: ['resume', 'stop', 'delete'],
  stopped: ['delete'],
}

const show = (v) => (v === null || v === undefined ? '' : String(v))

function pnlClass(v) {
  const s = show(v)
  if (s.startsWith('-')) return 'neg'
  if (/[1-9]/.test(s)) return 'pos'
  return ''
}

// The open orders of one strategy (from GET /api/orders_state, filtered by strategy_id).
function StrategyOrders({ strategy, version }) {
  const [orders, setOrders] = useState(null)
  const [error, setError] = useState(null)
  useEffect(() => {
    let live = true
    api('/api/orders_state', { query: { status: 'open', symbol: strategy.symbol, limit: 1000 } })
      .then((answer) => {
        if (!live) return
        setOrders(answer.orders.filter((o) => o.strategy_id === strategy.strategy_id))
        setError(null)
      })
      .catch((err) => live && setError(err))
    return () => {
      live = false
    }
  }, [strategy.strategy_id, strategy.symbol, version])
  if (error) return html`<${ErrorLine} error=${error} />`
  if (orders === null) return html`<p class="note">Loading orders…</p>`
  if (!orders.length) return html`<p class="note">No open orders.</p>`
  return html`<table class="data strategies-orders" data-testid=${`strategy-orders-${strategy.strategy_id}`}>
    <caption>Open orders of ${strategy.strategy_id}</caption>
    <thead>
      <tr><th scope="col">client order id</th><th scope="col">side</th><th scope="col">type</th><th scope="col" class="num">qty</th><th scope="col" class="num">price</th><th scope="col" class="num">filled</th><th scope="col">status</th></tr>
    </thead>
    <tbody>
      ${orders.map(
        (o) => html`<tr key=${o.client_order_id} data-testid=${`strategy-order-${o.client_order_id}`}>
          <td>${o.client_order_id}</td>
          <td class=${o.side === 'SELL' ? 'sell' : 'buy'}>${o.side}</td>
          <td>${o.type}</td>
          <td class="num">${show(o.order_qty)}</td>
          <td class="num">${show(o.limit_price)}</td>
          <td class="num">${show(o.executed_qty)}</td>
          <td>${o.status}</td>
        </tr>`,
      )}
    </tbody>
  </table>`
}

function StrategyRow({ s, mayAct, busy, onAction, expanded, onToggle }) {
  const actions = mayAct ? ACTIONS[s.state] || ['delete'] : []
  return html`<tr data-testid=${`strategy-row-${s.strategy_id}`}>
    <td>
      <button
        type="button"
        class="strategies-expand"
        aria-expanded=${expanded ? 'true' : 'false'}
        aria-label=${`${expanded ? 'Hide' : 'Show'} the orders of ${s.strategy_id}`}
        onClick=${onToggle}
      >${expanded ? '▾' : '▸'}</button>
      ${' '}${s.strategy_id}
    </td>
    <td>${s.strategy}</td>
    <td>${s.symbol}</td>
    <td><span class=${`strategies-state strategies-state-${s.state}`} data-testid=${`strategy-state-${s.strategy_id}`}>${s.state}</span></td>
    <td class="num">${show(s.position)}</td>
    <td class="num">${show(s.avg_price)}</td>
    <td class=${`num ${pnlClass(s.realized_pnl)}`}>${show(s.realized_pnl)}</td>
    <td class=${`num ${pnlClass(s.unrealized_pnl)}`}>${show(s.unrealized_pnl)}</td>
    <td class="num" data-testid=${`strategy-open-${s.strategy_id}`}>${show(s.open_orders)}</td>
    <td class="num" title="orders placed / denied / fills since the engine started">
      ${show(s.orders)} / ${show(s.denied)} / ${show(s.fills)}
    </td>
    <td class="strategies-error">${s.error || ''}</td>
    <td class="strategies-actions">
      ${actions.map(
        (a) => html`<button
          type="button"
          key=${a}
          disabled=${busy}
          data-testid=${`strategy-${a}-${s.strategy_id}`}
          class=${a === 'delete' || a === 'stop' ? 'btn btn-small btn-danger' : 'btn btn-small'}
          onClick=${() => onAction(s, a)}
        >${a}</button>`,
      )}
    </td>
  </tr>`
}

function AddStrategy({ catalog, symbols, onAdded }) {
  const first = catalog[0] ? catalog[0].name : ''
  const [kind, setKind] = useState(first)
  const [strategyId, setStrategyId] = useState('')
  const [symbol, setSymbol] = useState(symbols[0] || '')
  const [start, setStart] = useState(true)
  const [params, setParams] = useState({})
  const [errors, setErrors] = useState({})
  const [error, setError] = useState(null)
  const [busy, setBusy] = useState(false)
  const entry = catalog.find((c) => c.name === kind)
  const schema = entry ? entry.params_schema : null

  useEffect(() => {
    if (!kind && first) setKind(first)
  }, [first])
  useEffect(() => {
    setParams(schema ? initialValues(schema) : {})
    setErrors({})
  }, [kind, catalog])
  useEffect(() => {
    if (!symbol && symbols.length) setSymbol(symbols[0])
  }, [symbols])

  async function submit(e) {
    e.preventDefault()
    setError(null)
    const found = schema ? validate(schema, params) : {}
    const id = strategyId.trim()
    if (!id) found.__id = 'strategy id is required'
    else if (!/^[A-Za-z0-9._-]{1,64}$/.test(id)) {
      found.__id = 'strategy id must be 1-64 characters of A-Z a-z 0-9 . _ -'
    }
    if (!symbol) found.__symbol = 'symbol is required'
    setErrors(found)
    if (Object.keys(found).length) return
    setBusy(true)
    try {
      const body = {
        strategy_id: id,
        strategy: kind,
        symbol,
        params: schema ? toPayload(schema, params) : {},
        start,
      }
      const added = await api('/api/strategies', { method: 'POST', body })
      setStrategyId('')
      onAdded(added)
    } catch (err) {
      setError(err)
    } finally {
      setBusy(false)
    }
  }

  return html`<form class="strategies-add" onSubmit=${submit} noValidate data-testid="strategy-add-form">
    <div class="form-row strategies-add-head">
      <div class="field form-field">
        <label for="strategy-add-id">strategy id *</label>
        <input
          id="strategy-add-id"
          value=${strategyId}
          autocomplete="off"
          aria-invalid=${errors.__id ? 'true' : undefined}
          aria-describedby="strategy-add-id-help"
          onInput=${(e) => setStrategyId(e.currentTarget.value)}
        />
        <small id="strategy-add-id-help" class="muted form-help">1-64 of A-Z a-z 0-9 . _ -</small>
        ${errors.__id ? html`<small class="neg form-error" role="alert">${errors.__id}</small>` : null}
      </div>
      <div class="field form-field">
        <label for="strategy-add-kind">strategy</label>
        <select id="strategy-add-kind" value=${kind} onChange=${(e) => setKind(e.currentTarget.value)}>
          ${catalog.map((c) => html`<option value=${c.name}>${c.name}</option>`)}
        </select>
        ${entry ? html`<small class="muted form-help">${entry.description}</small>` : null}
      </div>
      <div class="field form-field">
        <label for="strategy-add-symbol">symbol</label>
        <select id="strategy-add-symbol" value=${symbol} onChange=${(e) => setSymbol(e.currentTarget.value)}>
          ${symbols.map((s) => html`<option value=${s}>${s}</option>`)}
        </select>
        ${errors.__symbol ? html`<small class="neg form-error" role="alert">${errors.__symbol}</small>` : null}
      </div>
    </div>
    <fieldset class="strategies-params">
      <legend>Parameters of ${kind || '…'}</legend>
      ${schema
        ? html`<${SchemaForm}
            schema=${schema}
            values=${params}
            onChange=${setParams}
            idPrefix="strategy-param"
            errors=${errors}
          />`
        : null}
    </fieldset>
    <div class="form-field form-check">
      <input id="strategy-add-start" type="checkbox" checked=${start} onChange=${(e) => setStart(e.currentTarget.checked)} />
      <label for="strategy-add-start">start now</label>
    </div>
    <button type="submit" class="btn" disabled=${busy || !kind} data-testid="strategy-add-submit">Add strategy</button>
    <${ErrorLine} error=${error} />
  </form>`
}

export function StrategiesView() {
  useStore((s) => s.auth) // re-render when who is logged in changes (can() reads it)
  const symbols = useStore((s) => s.symbols)
  const [list, setList] = useState(null)
  const [catalog, setCatalog] = useState([])
  const [error, setError] = useState(null)
  const [busy, setBusy] = useState({})
  const [expanded, setExpanded] = useState({})
  const [version, setVersion] = useState(0) // bumps on order events: open-order lists re-fetch
  const timer = useRef(null)
  const mayAct = can('trader')

  const load = useCallback(async () => {
    try {
      const answer = await api('/api/strategies')
      setList(answer.strategies)
      setVersion((v) => v + 1)
      setError(null)
    } catch (err) {
      setError(err)
    }
  }, [])

  // Events come in bursts (a grid places its whole ladder at once): one re-fetch per burst.
  const soon = useCallback(() => {
    if (timer.current) return
    timer.current = setTimeout(() => {
      timer.current = null
      load()
    }, 150)
  }, [load])

  useEffect(() => {
    load()
    api('/api/strategies/catalog')
      .then((answer) => setCatalog(answer.strategies))
      .catch((err) => setError(err))
    return () => timer.current && clearTimeout(timer.current)
  }, [])

  useEvent(['strategy', 'resync'], () => soon())
  useEvent(['fill', 'order_update'], (data) => {
    if (data && data.strategy_id) soon()
  })

  async function act(s, action) {
    if (action === 'stop' || action === 'delete') {
      const text =
        action === 'stop'
          ? `Stop strategy ${s.strategy_id}? Its open orders are cancelled and it cannot be started again.`
          : `Delete strategy ${s.strategy_id}? It is stopped, its open orders are cancelled and it is forgotten.`
      if (!(await confirmAction(text))) return
    }
    setBusy((b) => ({ ...b, [s.strategy_id]: true }))
    setError(null)
    try {
      const path = `/api/strategies/${enc(s.strategy_id)}`
      if (action === 'delete') await api(path, { method: 'DELETE' })
      else await api(`${path}/${action}`, { method: 'POST' })
      await load()
    } catch (err) {
      setError(err)
    } finally {
      setBusy((b) => ({ ...b, [s.strategy_id]: false }))
    }
  }

  const rows = (list || []).filter((s) => s.state !== 'removed')
  return html`<div class="strategies-view" data-testid="strategies-view">
    <${Panel} title="Strategies">
      <${ErrorLine} error=${error} />
      ${list === null
        ? html`<p class="note">Loading…</p>`
        : rows.length === 0
          ? html`<p class="note" data-testid="strategies-empty">No strategy yet.</p>`
          : html`<table class="data strategies-table" data-testid="strategies-table">
              <thead>
                <tr>
                  <th scope="col">id</th><th scope="col">strategy</th><th scope="col">symbol</th>
                  <th scope="col">state</th><th scope="col" class="num">position</th><th scope="col" class="num">avg price</th>
                  <th scope="col" class="num">realised PnL</th><th scope="col" class="num">unrealised PnL</th>
                  <th scope="col" class="num">open orders</th><th scope="col" class="num">orders / denied / fills</th>
                  <th scope="col">error</th><th scope="col">actions</th>
                </tr>
              </thead>
              <tbody>
                ${rows.map(
                  (s) => html`
                    <${StrategyRow}
                      key=${s.strategy_id}
                      s=${s}
                      mayAct=${mayAct}
                      busy=${Boolean(busy[s.strategy_id])}
                      onAction=${act}
                      expanded=${Boolean(expanded[s.strategy_id])}
                      onToggle=${() => setExpanded((x) => ({ ...x, [s.strategy_id]: !x[s.strategy_id] }))}
                    />
                    ${expanded[s.strategy_id]
                      ? html`<tr key=${`${s.strategy_id}-orders`} class="strategies-orders-row">
                          <td colspan="12">
                            <p class="muted" data-testid=${`strategy-params-${s.strategy_id}`}>
                              parameters: <code>${JSON.stringify(s.params)}</code>
                            </p>
                            <${StrategyOrders} strategy=${s} version=${version} />
                          </td>
                        </tr>`
                      : null}
                  `,
                )}
              </tbody>
            </table>`}
    <//>
    ${mayAct
      ? html`<${Panel} title="Add a strategy">
          ${catalog.length
            ? html`<${AddStrategy} catalog=${catalog} symbols=${symbols || []} onAdded=${() => load()} />`
            : html`<p class="note">Loading the catalogue…</p>`}
        <//>`
      : html`<p class="note" data-testid="strategies-viewing-only">
          Viewing only: adding and controlling strategies needs the trader role.
        </p>`}
  </div>`
}
