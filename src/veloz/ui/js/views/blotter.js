// The blotter: open orders (cancel one, cancel all with a confirm), the order history and
// the trades, each filtered by symbol (and the history by status), the history and trades
// paged with `before=<ts_ns>` (newest first).
//
// REST gives the state (again on every stream 'resync': after a reconnect or a `reset`);
// the SSE `order_update` and `fill` events keep it live. Figures are shown as the server
// wrote them.
import { html, useState, useEffect, useRef } from '../html.js'
import { api } from '../api.js'
import { useStore, can } from '../store.js'
import { useEvent } from '../stream.js'
import { ErrorLine, Panel, confirmAction, fmtTime } from '../ui.js'

const PAGE = 25
const OPEN = new Set(['PENDING_NEW', 'ACCEPTED', 'PARTIALLY_FILLED', 'PENDING_CANCEL'])
const STATUSES = [
  'PENDING_NEW',
  'ACCEPTED',
  'PARTIALLY_FILLED',
  'PENDING_CANCEL',
  'FILLED',
  'CANCELLED',
  'REJECTED',
  'EXPIRED',
]
const TABS = [
  ['open', 'Open orders'],
  ['history', 'Order history'],
  ['trades', 'Trades'],
]

// Does an order match the history's status filter ('' all, 'open', 'final', a status)?
function statusMatches(filter, status) {
  if (!filter) return true
  if (filter === 'open') return OPEN.has(status)
  if (filter === 'final') return !OPEN.has(status)
  return filter === status
}

function upsert(list, order, limit) {
  const at = list.findIndex((o) => o.client_order_id === order.client_order_id)
  if (at >= 0) {
    const next = list.slice()
    next[at] = order
    return next
  }
  return [order, ...list].slice(0, limit)
}

// How far along an order is; final statuses last.
const PROGRESS = { PENDING_NEW: 0, ACCEPTED: 1, PARTIALLY_FILLED: 2, PENDING_CANCEL: 3 }
const progress = (status) => PROGRESS[status] ?? 4
const tsOf = (o) => BigInt(String(o.last_ts_ns ?? 0).split('.')[0])
// Is `a` (an order from the stream) at least as recent as `b` (the same from REST)?
function fresher(a, b) {
  const ta = tsOf(a)
  const tb = tsOf(b)
  return ta > tb || (ta === tb && progress(a.status) >= progress(b.status))
}

// The order fields from a stream update (its type is `order_type` there, `type` over REST).
function orderOf(update) {
  const { type, seq, event, ts_ns, ...order } = update
  return order
}

function Pager({ page, onNewest, onOlder, more, testid }) {
  return html`<div class="form-row blotter-pager" data-testid=${testid}>
    <button type="button" class="btn" disabled=${page === 0} onClick=${onNewest}
      data-testid=${`${testid}-newest`}>Newest</button>
    <span class="blotter-page">page ${page + 1}</span>
    <button type="button" class="btn" disabled=${!more} onClick=${onOlder}
      data-testid=${`${testid}-older`}>Older</button>
  </div>`
}

export function Blotter({ symbol }) {
  const symbols = useStore((s) => s.symbols)
  useStore((s) => s.auth) // re-render on login / logout: `can` depends on it
  const [tab, setTab] = useState('open')
  const [symbolFilter, setSymbolFilter] = useState(symbol || '')
  const [statusFilter, setStatusFilter] = useState('')
  const [open, setOpen] = useState([])
  const [history, setHistory] = useState({ rows: [], befores: [], more: false })
  const [trades, setTrades] = useState({ rows: [], befores: [], more: false })
  const [error, setError] = useState(null)
  const [busy, setBusy] = useState(new Set()) // client_order_ids being cancelled
  // The latest stream update of recent orders: a REST answer that left before an update
  // arrived must not bring the older state back.
  const latest = useRef(new Map())
  const current = (orders) =>
    orders.map((o) => {
      const update = latest.current.get(o.client_order_id)
      return update && fresher(update, o) ? update : o
    })
  const filters = useRef({})
  filters.current = { symbol: symbolFilter, status: statusFilter }
  const trader = can('trader')

  useEffect(() => setSymbolFilter(symbol || ''), [symbol])

  const query = (extra) => ({ symbol: filters.current.symbol || undefined, ...extra })

  // Each list shows the answer to its newest request only: filters change faster than
  // the engine answers under load, and a late answer to an older query must not win.
  const asked = useRef({ open: 0, history: 0, trades: 0 })
  const ask = (list) => ++asked.current[list]
  const newest = (list, ticket) => asked.current[list] === ticket

  const loadOpen = async () => {
    const ticket = ask('open')
    try {
      const answer = await api('/api/orders_state', { query: query({ status: 'open', limit: 500 }) })
      if (!newest('open', ticket)) return
      setOpen(current(answer.orders).filter((o) => OPEN.has(o.status)))
      setError(null)
    } catch (err) {
      setError(err)
    }
  }
  // befores: the `before` of each page shown so far (page 0: none).
  const loadHistory = async (befores = []) => {
    const before = befores[befores.length - 1]
    const ticket = ask('history')
    try {
      const answer = await api('/api/orders_state', {
        query: query({ status: filters.current.status || undefined, limit: PAGE, before }),
      })
      if (!newest('history', ticket)) return
      const rows = current(answer.orders).filter((o) => statusMatches(filters.current.status, o.status))
      setHistory({ rows, befores, more: answer.orders.length === PAGE })
      setError(null)
    } catch (err) {
      setError(err)
    }
  }
  const loadTrades = async (befores = []) => {
    const before = befores[befores.length - 1]
    const ticket = ask('trades')
    try {
      const answer = await api('/api/trades', { query: query({ limit: PAGE, before }) })
      if (!newest('trades', ticket)) return
      setTrades({ rows: answer.trades, befores, more: answer.trades.length === PAGE })
      setError(null)
    } catch (err) {
      setError(err)
    }
  }
  const loadAll = () => {
    loadOpen()
    loadHistory()
    loadTrades()
  }

  useEffect(loadAll, [symbolFilter])
  const statusShown = useRef(statusFilter)
  useEffect(() => {
    if (statusShown.current === statusFilter) return // loaded with the rest
    statusShown.current = statusFilter
    loadHistory()
  }, [statusFilter])
  useEvent('resync', loadAll)

  useEvent('order_update', (update) => {
    const order = orderOf(update)
    latest.current.set(order.client_order_id, order)
    if (latest.current.size > 1000) latest.current.delete(latest.current.keys().next().value)
    const { symbol: sym, status } = filters.current
    if (sym && order.symbol !== sym) return
    setOpen((prev) =>
      OPEN.has(order.status)
        ? upsert(prev, order, 500)
        : prev.filter((o) => o.client_order_id !== order.client_order_id),
    )
    setHistory((prev) => {
      const held = prev.rows.some((o) => o.client_order_id === order.client_order_id)
      if (held) {
        // an order on the page shown changes in place (or leaves a status filter)
        const rows = statusMatches(status, order.status)
          ? upsert(prev.rows, order, PAGE)
          : prev.rows.filter((o) => o.client_order_id !== order.client_order_id)
        return { ...prev, rows }
      }
      if (prev.befores.length > 0 || !statusMatches(status, order.status)) return prev
      // a new order on the newest page pushes its oldest one to the next page
      return { ...prev, rows: upsert(prev.rows, order, PAGE), more: prev.more || prev.rows.length >= PAGE }
    })
  })
  useEvent('fill', (update) => {
    const { type, seq, ...fill } = update
    const { symbol: sym } = filters.current
    if (sym && fill.symbol !== sym) return
    setTrades((prev) => {
      if (prev.befores.length > 0 || prev.rows.some((t) => t.trade_id === fill.trade_id)) {
        return prev
      }
      const rows = [fill, ...prev.rows].slice(0, PAGE)
      return { ...prev, rows, more: prev.more || prev.rows.length >= PAGE }
    })
  })

  const cancel = async (order) => {
    setBusy((prev) => new Set(prev).add(order.client_order_id))
    try {
      const answer = await api('/api/cancel', {
        method: 'POST',
        body: { client_order_id: order.client_order_id, symbol: order.symbol },
      })
      // The stream may already have said more (CANCELLED: the row is gone): the answer
      // only replaces a row still there.
      const { ok, ...held } = answer
      setOpen((prev) =>
        prev.some((o) => o.client_order_id === held.client_order_id && o.status !== held.status)
          ? OPEN.has(held.status)
            ? upsert(prev, held, 500)
            : prev.filter((o) => o.client_order_id !== held.client_order_id)
          : prev,
      )
      setError(null)
    } catch (err) {
      setError(err)
    } finally {
      setBusy((prev) => {
        const next = new Set(prev)
        next.delete(order.client_order_id)
        return next
      })
    }
  }

  const cancelAll = async () => {
    const where = symbolFilter || 'every symbol'
    const count = open.length
    const ok = await confirmAction(
      `Cancel all ${count} open order${count === 1 ? '' : 's'} of ${where}?`,
    )
    if (!ok) return
    try {
      await api('/api/cancel_all', {
        method: 'POST',
        body: symbolFilter ? { symbol: symbolFilter } : {},
      })
      setError(null)
      loadOpen()
    } catch (err) {
      setError(err)
    }
  }

  const orderRow = (o, withCancel) => html`<tr data-testid=${`order-row-${o.client_order_id}`}
      data-status=${o.status} class="blotter-order">
    <td>${fmtTime(o.created_ts_ns)}</td>
    <td>${o.symbol}</td>
    <td class=${o.side === 'SELL' ? 'sell' : 'buy'}>${o.side}</td>
    <td>${o.type ?? o.order_type}</td>
    <td class="num">${o.order_qty}</td>
    <td class="num">${o.limit_price ?? 'market'}</td>
    <td class="num">${o.executed_qty}</td>
    <td class="num">${o.avg_price ?? ''}</td>
    <td data-testid="order-status">${o.status}${o.reason ? html` <span class="blotter-reason">(${o.reason})</span>` : null}</td>
    <td class="blotter-id">${o.client_order_id}</td>
    ${withCancel
      ? html`<td>
          <button type="button" class="btn btn-small" data-testid=${`cancel-${o.client_order_id}`}
            aria-label=${`Cancel order ${o.client_order_id}`}
            disabled=${busy.has(o.client_order_id) || o.status === 'PENDING_CANCEL'}
            onClick=${() => cancel(o)}>Cancel</button>
        </td>`
      : null}
  </tr>`

  const orderHead = (withCancel) => html`<thead><tr>
    <th scope="col">Created (UTC)</th><th scope="col">Symbol</th><th scope="col">Side</th>
    <th scope="col">Type</th><th scope="col" class="num">Qty</th><th scope="col" class="num">Price</th>
    <th scope="col" class="num">Filled</th><th scope="col" class="num">Avg price</th><th scope="col">Status</th>
    <th scope="col">Client order id</th>${withCancel ? html`<th scope="col"><span class="sr-only">Actions</span></th>` : null}
  </tr></thead>`

  const empty = (cols, text) => html`<tr><td colspan=${cols} class="muted blotter-empty">${text}</td></tr>`

  let body
  if (tab === 'open') {
    body = html`<table class="data blotter-table" data-testid="blotter-open">
      <caption class="sr-only">Open orders</caption>
      ${orderHead(trader)}
      <tbody>${open.length ? open.map((o) => orderRow(o, trader)) : empty(11, 'No open orders.')}</tbody>
    </table>`
  } else if (tab === 'history') {
    body = html`<table class="data blotter-table" data-testid="blotter-history">
      <caption class="sr-only">Order history</caption>
      ${orderHead(false)}
      <tbody>${history.rows.length ? history.rows.map((o) => orderRow(o, false)) : empty(10, 'No orders.')}</tbody>
    </table>
    <${Pager} testid="history-pager" page=${history.befores.length} more=${history.more}
      onNewest=${() => loadHistory([])}
      onOlder=${() => loadHistory([...history.befores, history.rows[history.rows.length - 1].created_ts_ns])} />`
  } else {
    body = html`<table class="data blotter-table" data-testid="blotter-trades">
      <caption class="sr-only">Trades</caption>
      <thead><tr>
        <th scope="col">Time (UTC)</th><th scope="col">Symbol</th><th scope="col">Side</th>
        <th scope="col" class="num">Qty</th><th scope="col" class="num">Price</th><th scope="col" class="num">Fee</th>
        <th scope="col">Liquidity</th><th scope="col">Client order id</th><th scope="col">Trade id</th>
      </tr></thead>
      <tbody>${trades.rows.length
        ? trades.rows.map(
            (t) => html`<tr data-testid=${`trade-row-${t.trade_id}`} data-order=${t.client_order_id}
                class="blotter-trade">
              <td>${fmtTime(t.ts_ns)}</td><td>${t.symbol}</td>
              <td class=${t.side === 'SELL' ? 'sell' : 'buy'}>${t.side}</td>
              <td class="num">${t.qty}</td><td class="num">${t.price}</td>
              <td class="num">${t.fee} ${t.fee_asset ?? ''}</td><td>${t.liquidity}</td>
              <td class="blotter-id">${t.client_order_id}</td><td class="blotter-id">${t.trade_id}</td>
            </tr>`,
          )
        : empty(9, 'No trades.')}</tbody>
    </table>
    <${Pager} testid="trades-pager" page=${trades.befores.length} more=${trades.more}
      onNewest=${() => loadTrades([])}
      onOlder=${() => loadTrades([...trades.befores, trades.rows[trades.rows.length - 1].ts_ns])} />`
  }

  const actions = html`<div class="form-row blotter-filters">
    <label for="blotter-symbol">Symbol</label>
    <select id="blotter-symbol" data-testid="blotter-symbol" value=${symbolFilter}
      onChange=${(e) => setSymbolFilter(e.currentTarget.value)}>
      <option value="">All symbols</option>
      ${symbols.map((s) => html`<option value=${s}>${s}</option>`)}
    </select>
    ${tab === 'history'
      ? html`<label for="blotter-status">Status</label>
        <select id="blotter-status" data-testid="blotter-status" value=${statusFilter}
          onChange=${(e) => setStatusFilter(e.currentTarget.value)}>
          <option value="">All</option>
          <option value="open">Open</option>
          <option value="final">Final</option>
          ${STATUSES.map((s) => html`<option value=${s}>${s}</option>`)}
        </select>`
      : null}
    ${tab === 'open' && trader
      ? html`<button type="button" class="btn btn-danger" data-testid="cancel-all"
          disabled=${open.length === 0} onClick=${cancelAll}>Cancel all</button>`
      : null}
  </div>`

  return html`<${Panel} title="Blotter" testid="blotter" class="blotter" actions=${actions}>
    <div class="form-row blotter-tabs" role="group" aria-label="Blotter contents">
      ${TABS.map(
        ([id, label]) => html`<button type="button" id=${`blotter-tab-${id}`}
          class=${`btn blotter-tab ${tab === id ? 'btn-primary blotter-tab-active' : ''}`}
          aria-pressed=${tab === id ? 'true' : 'false'} data-testid=${`blotter-tab-${id}`}
          onClick=${() => setTab(id)}>
          ${label}${id === 'open' ? ` (${open.length})` : ''}
        </button>`,
      )}
    </div>
    <${ErrorLine} error=${error} testid="blotter-error" />
    <div class="blotter-body" role="region" aria-labelledby=${`blotter-tab-${tab}`}>${body}</div>
  </${Panel}>`
}
