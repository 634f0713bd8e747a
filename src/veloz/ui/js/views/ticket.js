// The order ticket: limit or market, side, qty, price, time in force.
//
// - Checked before sending against the instrument's filters (GET /api/instruments): the
//   step and bounds of a quantity (LOT_SIZE, MARKET_LOT_SIZE), the tick and bounds of a
//   price (PRICE_FILTER), the notional (NOTIONAL), whether the symbol trades at all. The
//   arithmetic is exact (decimal strings as scaled BigInts), never floating point.
// - What is sent is what was typed (strings); the server's refusal is shown verbatim
//   (errorText: "risk_rejected: ... (reason)", "bad_params: LOT_SIZE: ...",
//   "trading_disabled: ...").
// - Keyboard-first: Enter submits (it is a <form>), Esc clears what was typed.
// - Disabled, with the reason, while the engine is READONLY / MAINTENANCE / HALTED; a user
//   who may not trade (a viewer) is not offered the form at all.
// - What was typed lives in this module (per symbol), not only in the component: it
//   survives the component unmounting (logging in again after the session expired or a
//   logout, switching tabs). It is kept for the user who typed it only: when another user
//   logs in, the ticket starts empty.
import { html, useState, useEffect, useRef } from '../html.js'
import { api } from '../api.js'
import { useStore, can } from '../store.js'
import { useEvent } from '../stream.js'
import { ErrorLine, Panel } from '../ui.js'

const BLANK = { type: 'LIMIT', side: 'BUY', qty: '', price: '', tif: 'GTC' }
const drafts = new Map() // symbol -> what was typed
let draftsOwner = null // who typed them (see ownerOf); null: nobody yet

// Who the drafts belong to: the logged-in user ('' with authentication off), or null
// while nobody is logged in (the drafts wait for the next login).
function ownerOf(auth) {
  if (!auth.enabled) return ''
  return auth.loggedIn && auth.me ? `${auth.me.kind}:${auth.me.name}` : null
}

// Makes `owner` the drafts' owner, forgetting another user's drafts. True when another
// user had them.
function claimDrafts(owner) {
  if (owner === null || owner === draftsOwner) return false
  const another = draftsOwner !== null
  drafts.clear()
  draftsOwner = owner
  return another
}

const TRADING_MODES = new Set(['ACTIVE'])
// How far along an order is, to tell which of two views of it is newer.
const PROGRESS = { PENDING_NEW: 0, ACCEPTED: 1, PARTIALLY_FILLED: 2, PENDING_CANCEL: 3 }
const progress = (status) => PROGRESS[status] ?? 4 // final statuses last
// The latest stream update of recent orders: an order can fill (and say so on the stream)
// before the answer to its POST arrives.
const seen = new Map()
const SEEN_KEPT = 200

// -- instruments (shared by every ticket; fetched once, again after a failure) ---------
let instrumentsPromise = null
export function loadInstruments() {
  if (!instrumentsPromise) {
    instrumentsPromise = api('/api/instruments')
      .then((answer) => new Map(answer.instruments.map((i) => [i.symbol, i])))
      .catch((err) => {
        instrumentsPromise = null
        throw err
      })
  }
  return instrumentsPromise
}

// -- exact decimals -----------------------------------------------------------------
const NUMBER = /^(?:\d+(?:\.\d*)?|\.\d+)$/

// "12.340" -> { n: 12340n, s: 3 }; null for anything that is not a plain non-negative number.
export function dec(value) {
  if (value === null || value === undefined) return null
  const text = String(value).trim()
  if (!NUMBER.test(text)) return null
  const [whole, fraction = ''] = text.split('.')
  return { n: BigInt((whole || '0') + fraction), s: fraction.length }
}

function scaled(a, s) {
  return a.n * 10n ** BigInt(s - a.s)
}

function cmp(a, b) {
  const s = Math.max(a.s, b.s)
  const x = scaled(a, s)
  const y = scaled(b, s)
  return x < y ? -1 : x > y ? 1 : 0
}

function isMultiple(value, increment) {
  if (increment.n === 0n) return true
  const s = Math.max(value.s, increment.s)
  return scaled(value, s) % scaled(increment, s) === 0n
}

function mul(a, b) {
  return { n: a.n * b.n, s: a.s + b.s }
}

function show(d) {
  const digits = d.n.toString().padStart(d.s + 1, '0')
  return d.s ? `${digits.slice(0, -d.s)}.${digits.slice(-d.s)}` : digits
}

function positive(d) {
  return d !== null && d.n > 0n
}

// What is wrong with the order, in words, or null. `reference`: the last mid price (for a
// market order's notional), or null.
export function validate(draft, instrument, reference) {
  const symbol = instrument.symbol
  if (instrument.trading === false) {
    return `${symbol} is not trading now (status ${instrument.status})`
  }
  if (draft.qty.trim() === '') return 'Enter a quantity'
  const qty = dec(draft.qty)
  if (!positive(qty)) return `qty ${draft.qty} is not a positive number`
  const market = draft.type === 'MARKET'
  const step = dec(instrument.size_increment)
  const filter = market && (instrument.market_min_qty != null || instrument.market_max_qty != null)
    ? 'MARKET_LOT_SIZE'
    : 'LOT_SIZE'
  const minQty = dec(
    market && instrument.market_min_qty != null ? instrument.market_min_qty : instrument.min_qty,
  )
  const maxQty = dec(
    market && instrument.market_max_qty != null ? instrument.market_max_qty : instrument.max_qty,
  )
  if (step && !isMultiple(qty, step)) {
    return `LOT_SIZE: qty ${draft.qty} is not a multiple of the step ${instrument.size_increment} for ${symbol}`
  }
  if (minQty && cmp(qty, minQty) < 0) {
    return `${filter}: qty ${draft.qty} is below the minimum ${show(minQty)} for ${symbol}`
  }
  if (maxQty && maxQty.n > 0n && cmp(qty, maxQty) > 0) {
    return `${filter}: qty ${draft.qty} is above the maximum ${show(maxQty)} for ${symbol}`
  }
  let price = null
  if (!market) {
    if (draft.price.trim() === '') return 'Enter a limit price'
    price = dec(draft.price)
    if (!positive(price)) return `price ${draft.price} is not a positive number`
    const tick = dec(instrument.price_increment)
    if (tick && !isMultiple(price, tick)) {
      return `PRICE_FILTER: price ${draft.price} is not a multiple of the tick ${instrument.price_increment} for ${symbol}`
    }
    const minPrice = dec(instrument.min_price)
    const maxPrice = dec(instrument.max_price)
    if (minPrice && minPrice.n > 0n && cmp(price, minPrice) < 0) {
      return `PRICE_FILTER: price ${draft.price} is below the minimum ${instrument.min_price} for ${symbol}`
    }
    if (maxPrice && maxPrice.n > 0n && cmp(price, maxPrice) > 0) {
      return `PRICE_FILTER: price ${draft.price} is above the maximum ${instrument.max_price} for ${symbol}`
    }
  } else if (reference) {
    price = dec(reference)
  }
  if (price) {
    const notional = mul(qty, price)
    const minNotional = dec(instrument.min_notional)
    const maxNotional = dec(instrument.max_notional)
    const checkMin = !market || instrument.min_notional_applies_to_market
    const checkMax = !market || instrument.max_notional_applies_to_market
    const at = market ? ` at the market price ${reference}` : ''
    if (checkMin && minNotional && cmp(notional, minNotional) < 0) {
      return `NOTIONAL: ${draft.qty} × ${market ? reference : draft.price} = ${show(notional)}${at} is below the minimum notional ${instrument.min_notional} ${instrument.quote_asset}`
    }
    if (checkMax && maxNotional && maxNotional.n > 0n && cmp(notional, maxNotional) > 0) {
      return `NOTIONAL: ${show(notional)}${at} is above the maximum notional ${instrument.max_notional} ${instrument.quote_asset}`
    }
  }
  return null
}

function newClientOrderId() {
  const random = Math.random().toString(36).slice(2, 8)
  return `ui-${Date.now().toString(36)}-${random}`
}

export function OrderTicket({ symbol }) {
  const auth = useStore((s) => s.auth)
  const mode = useStore((s) => s.mode)
  const modeReason = useStore((s) => s.modeReason)
  const owner = ownerOf(auth)
  const [draft, setDraftState] = useState(() => {
    claimDrafts(owner)
    return drafts.get(symbol) || { ...BLANK }
  })
  const [instrument, setInstrument] = useState(null)
  const [loadError, setLoadError] = useState(null)
  const [error, setError] = useState(null) // the server's answer
  const [tried, setTried] = useState(false) // a submit was attempted: show what is wrong
  const [sending, setSending] = useState(false)
  const [placed, setPlaced] = useState(null) // { id, status }
  const reference = useRef(null) // the last mid of `symbol`, for a market order's notional
  const qtyRef = useRef(null)

  const setDraft = (patch) => {
    setDraftState((prev) => {
      const next = { ...prev, ...patch }
      drafts.set(symbol, next)
      return next
    })
  }

  // Another user logged in over this ticket (its session had expired, the app stayed
  // mounted under the login form): the previous user's order is not theirs.
  useEffect(() => {
    if (!claimDrafts(owner)) return
    setDraftState({ ...BLANK })
    setError(null)
    setTried(false)
    setPlaced(null)
  }, [owner])

  useEffect(() => {
    setDraftState(drafts.get(symbol) || { ...BLANK })
    setError(null)
    setTried(false)
    setPlaced(null)
    reference.current = null
    let stale = false
    setInstrument(null)
    loadInstruments()
      .then((found) => {
        if (stale) return
        const mine = found.get(symbol)
        setInstrument(mine || null)
        setLoadError(mine ? null : `no instrument ${symbol} on this engine`)
      })
      .catch((err) => {
        if (!stale) setLoadError(err)
      })
    return () => {
      stale = true
    }
  }, [symbol])

  useEvent('resync', () => {
    if (loadError) {
      loadInstruments()
        .then((found) => {
          setInstrument(found.get(symbol) || null)
          setLoadError(null)
        })
        .catch((err) => setLoadError(err))
    }
  })
  useEvent('market', (quote) => {
    if (quote.symbol === symbol) reference.current = quote.price
  })
  useEvent('order_update', (o) => {
    seen.set(o.client_order_id, o)
    if (seen.size > SEEN_KEPT) seen.delete(seen.keys().next().value)
    if (placed && o.client_order_id === placed.id) {
      setPlaced({ id: o.client_order_id, status: o.status, reason: o.reason })
    }
  })

  if (!can('trader')) {
    return html`<${Panel} title="Order ticket" testid="ticket" class="ticket">
      <p class="note ticket-viewonly" data-testid="ticket-viewonly">
        Viewing only: ${auth.me ? `${auth.me.name} is a ${auth.me.role}` : 'this session'}
        cannot place orders.
      </p>
    </${Panel}>`
  }

  const blocked = mode !== null && !TRADING_MODES.has(mode)
  const blockedReason = blocked
    ? `Trading is ${mode}${modeReason ? `: ${modeReason}` : ''}. New orders are refused; cancels still work.`
    : null
  const problem = instrument ? validate(draft, instrument, reference.current) : null
  const showProblem = problem && (tried || draft.qty !== '' || draft.price !== '')
  const market = draft.type === 'MARKET'

  const clear = () => {
    setDraft({ qty: '', price: '' })
    setError(null)
    setTried(false)
    setPlaced(null)
    qtyRef.current?.focus()
  }

  const submit = async (event) => {
    event.preventDefault()
    if (sending || blocked) return
    setTried(true)
    setError(null)
    if (!instrument) {
      setError(loadError || 'the instrument is not loaded yet')
      return
    }
    const wrong = validate(draft, instrument, reference.current)
    if (wrong) return
    const body = {
      symbol,
      side: draft.side,
      type: draft.type,
      qty: draft.qty.trim(),
      client_order_id: newClientOrderId(),
    }
    if (!market) {
      body.price = draft.price.trim()
      body.time_in_force = draft.tif
    }
    setSending(true)
    setPlaced(null)
    try {
      const answer = await api('/api/order', { method: 'POST', body })
      const update = seen.get(answer.client_order_id)
      const order = update && progress(update.status) >= progress(answer.status) ? update : answer
      setPlaced({ id: order.client_order_id, status: order.status, reason: order.reason })
      setTried(false)
    } catch (err) {
      setError(err)
      setPlaced(null)
    } finally {
      setSending(false)
    }
  }

  const onKeyDown = (event) => {
    if (event.key === 'Escape') {
      event.preventDefault()
      clear()
    }
  }

  const id = (name) => `ticket-${name}`
  return html`<${Panel} title=${`Order ticket ${symbol}`} testid="ticket" class="ticket">
    ${blocked
      ? html`<p id="ticket-blocked-reason" class="error-line ticket-blocked" role="status"
          data-testid="ticket-blocked">${blockedReason}</p>`
      : null}
    <form class="ticket-form" onSubmit=${submit} onKeyDown=${onKeyDown} data-testid="ticket-form"
      aria-describedby=${blocked ? 'ticket-blocked-reason' : undefined}>
      <fieldset disabled=${blocked} class="ticket-fields">
        <legend class="sr-only">New ${symbol} order</legend>
        <div class="form-row ticket-sides" role="radiogroup" aria-label="Side">
          ${['BUY', 'SELL'].map(
            (side) => html`<label class=${`ticket-side ${side === 'BUY' ? 'buy' : 'sell'}`}>
              <input type="radio" name="ticket-side" value=${side} checked=${draft.side === side}
                data-testid=${`ticket-side-${side.toLowerCase()}`}
                onChange=${() => setDraft({ side })} /> ${side}
            </label>`,
          )}
        </div>
        <div class="grid-2 ticket-grid">
          <div class="field">
            <label for=${id('type')}>Type</label>
            <select id=${id('type')} data-testid="ticket-type" value=${draft.type}
              onChange=${(e) => setDraft({ type: e.currentTarget.value })}>
              <option value="LIMIT">Limit</option>
              <option value="MARKET">Market</option>
            </select>
          </div>
          <div class="field">
            <label for=${id('tif')}>Time in force</label>
            <select id=${id('tif')} data-testid="ticket-tif" value=${draft.tif} disabled=${market}
              onChange=${(e) => setDraft({ tif: e.currentTarget.value })}>
              <option value="GTC" title="good till cancelled">GTC</option>
              <option value="IOC" title="immediate or cancel: what does not fill now is cancelled">IOC</option>
              <option value="FOK" title="fill or kill: all of it now, or nothing">FOK</option>
            </select>
          </div>
          <div class="field">
            <label for=${id('qty')}>Qty${instrument ? ` (${instrument.base_asset})` : ''}</label>
            <input id=${id('qty')} ref=${qtyRef} data-testid="ticket-qty" inputmode="decimal"
              autocomplete="off" value=${draft.qty}
              placeholder=${instrument ? String(instrument.min_qty) : ''}
              aria-invalid=${showProblem ? 'true' : undefined}
              onInput=${(e) => setDraft({ qty: e.currentTarget.value })} />
          </div>
          <div class="field">
            <label for=${id('price')}>Price${instrument ? ` (${instrument.quote_asset})` : ''}</label>
            <input id=${id('price')} data-testid="ticket-price" inputmode="decimal"
              autocomplete="off" value=${market ? '' : draft.price} disabled=${market}
              placeholder=${market ? 'at market' : ''}
              onInput=${(e) => setDraft({ price: e.currentTarget.value })} />
          </div>
        </div>
        <div class="form-row ticket-actions">
          <button type="submit" class=${`btn btn-primary ticket-submit`}
            data-testid="ticket-submit" disabled=${sending || blocked}>
            ${sending ? 'Sending…' : `${draft.side === 'BUY' ? 'Buy' : 'Sell'} ${symbol}`}
          </button>
          <button type="button" class="btn" data-testid="ticket-clear" onClick=${clear}>
            Clear (Esc)
          </button>
        </div>
      </fieldset>
    </form>
    ${showProblem
      ? html`<p class="error-line ticket-invalid" role="alert" data-testid="ticket-invalid">${problem}</p>`
      : null}
    <${ErrorLine} error=${error} testid="ticket-error" />
    <${ErrorLine} error=${loadError} testid="ticket-load-error" />
    ${placed
      ? html`<p class="ticket-placed" role="status" data-testid="ticket-placed">
          Order ${placed.id}: ${placed.status}${placed.reason ? ` (${placed.reason})` : ''}
        </p>`
      : null}
    ${instrument
      ? html`<p class="muted ticket-filters" data-testid="ticket-filters">
          tick ${instrument.price_increment} · step ${instrument.size_increment} ·
          min qty ${instrument.min_qty} · min notional ${instrument.min_notional}
          ${' '}${instrument.quote_asset}
          ${instrument.trading === false ? ` · ${instrument.status}` : ''}
        </p>`
      : null}
  </${Panel}>`
}
