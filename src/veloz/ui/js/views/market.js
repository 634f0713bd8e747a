// The market of the selected symbol: a one-minute candlestick chart (lightweight-charts,
// loaded by index.html as window.LightweightCharts) with the user's open orders as price
// lines and their fills as markers, the top of the book and the last trades.
//
// Data: the bars, open orders and fills from REST once (and again on every stream
// 'resync'); then live: the /ws/market WebSocket (trade, book_top and kline channels of
// this symbol: trades move the open candle, a closed kline settles it) and the SSE
// `order_update` / `fill` events. Nothing is polled.
//
// Figures are shown as the server wrote them (api.js keeps their text); Number() is used
// for the chart only.
import { html, useState, useEffect, useRef } from '../html.js'
import { api, withToken, parseJson } from '../api.js'
import { useEvent } from '../stream.js'
import { ErrorLine, Panel, fmtTime } from '../ui.js'

const BAR_LIMIT = 300
const TRADES_SHOWN = 5
const MARKERS_KEPT = 200
const BOOK_REFRESH_MS = 250
const OPEN = new Set(['PENDING_NEW', 'ACCEPTED', 'PARTIALLY_FILLED', 'PENDING_CANCEL'])
const UP = '#26a69a'
const DOWN = '#ef5350'

// ts_ns (a string of digits or a number) -> the chart's time: UTC seconds of the
// one-minute bar it falls in.
function barTime(tsNs) {
  const seconds = Math.floor(Number(tsNs) / 1e9)
  return seconds - (seconds % 60)
}

function candle(bar) {
  return {
    time: barTime(bar.ts_ns),
    open: Number(bar.open),
    high: Number(bar.high),
    low: Number(bar.low),
    close: Number(bar.close),
  }
}

const tsOf = (o) => BigInt(String(o.last_ts_ns ?? 0).split('.')[0])

function orderLabel(o) {
  return `${o.side} ${o.order_qty} @ ${o.limit_price}`
}

// A chart that lives as long as the component: created on mount, removed on unmount.
function useChart(container) {
  const ref = useRef(null)
  useEffect(() => {
    const LC = window.LightweightCharts
    if (!LC || !container.current) return undefined
    const chart = LC.createChart(container.current, {
      autoSize: true,
      layout: { background: { color: 'transparent' }, textColor: '#c9d1d9' },
      grid: { vertLines: { color: '#2a2f3a' }, horzLines: { color: '#2a2f3a' } },
      timeScale: { timeVisible: true, secondsVisible: false, rightOffset: 4 },
      rightPriceScale: { borderColor: '#2a2f3a' },
    })
    const series = chart.addSeries(LC.CandlestickSeries, {
      upColor: UP,
      downColor: DOWN,
      wickUpColor: UP,
      wickDownColor: DOWN,
      borderVisible: false,
    })
    const markers = LC.createSeriesMarkers(series, [])
    ref.current = { chart, series, markers, last: null, lines: new Map(), prices: [] }
    // The price scale takes in the open orders' prices too, so their lines are in view.
    series.applyOptions({
      autoscaleInfoProvider: (base) => {
        const info = base()
        const prices = ref.current ? ref.current.prices : []
        if (!info || prices.length === 0) return info
        const { minValue, maxValue } = info.priceRange
        return {
          ...info,
          priceRange: {
            minValue: Math.min(minValue, ...prices),
            maxValue: Math.max(maxValue, ...prices),
          },
        }
      },
    })
    return () => {
      ref.current = null
      chart.remove()
    }
  }, [])
  return ref
}

export function MarketView({ symbol }) {
  const container = useRef(null)
  const chartRef = useChart(container)
  const [error, setError] = useState(null)
  const [wsState, setWsState] = useState('connecting')
  const [book, setBook] = useState(null)
  const [trades, setTrades] = useState([])
  const [orders, setOrders] = useState(new Map()) // client_order_id -> open order
  const [fills, setFills] = useState([]) // own fills of this symbol, newest first
  const pendingBook = useRef(null)
  // The latest stream update of recent orders: a REST answer that left before an update
  // arrived must not bring an order's older state back.
  const latest = useRef(new Map())
  const symbolRef = useRef(symbol)
  symbolRef.current = symbol

  // -- REST state: bars, book, open orders, fills ----------------------------------
  const load = async () => {
    if (!symbol) return
    const wanted = symbol
    try {
      const [bars, top, open, own] = await Promise.all([
        api(`/api/market/${encodeURIComponent(symbol)}/bars`, {
          query: { interval: '1m', limit: BAR_LIMIT },
        }),
        api(`/api/market/${encodeURIComponent(symbol)}/book`, { query: { depth: 1 } }),
        api('/api/orders_state', { query: { status: 'open', symbol, limit: 500 } }),
        api('/api/trades', { query: { symbol, limit: MARKERS_KEPT } }),
      ])
      if (symbolRef.current !== wanted) return
      const c = chartRef.current
      if (c) {
        const data = bars.bars.map(candle)
        c.series.setData(data)
        c.last = data.length ? { ...data[data.length - 1] } : null
      }
      if (top.bids.length || top.asks.length) {
        setBook({
          bid: top.bids[0]?.[0] ?? null,
          bid_size: top.bids[0]?.[1] ?? null,
          ask: top.asks[0]?.[0] ?? null,
          ask_size: top.asks[0]?.[1] ?? null,
          ts_ns: top.ts_ns,
        })
      } else {
        setBook(null)
      }
      const held = new Map()
      for (const o of open.orders) {
        const update = latest.current.get(o.client_order_id)
        const now = update && tsOf(update) >= tsOf(o) ? update : o
        if (OPEN.has(now.status)) held.set(o.client_order_id, now)
      }
      setOrders(held)
      setFills(own.trades)
      setError(null)
    } catch (err) {
      if (symbolRef.current === wanted) setError(err)
    }
  }

  useEffect(() => {
    setTrades([])
    setBook(null)
    setOrders(new Map())
    setFills([])
    const c = chartRef.current
    if (c) {
      c.series.setData([])
      c.last = null
    }
    load()
  }, [symbol])

  useEvent('resync', () => load())

  // -- own orders and fills, live from the SSE stream --------------------------------
  useEvent('order_update', (o) => {
    latest.current.set(o.client_order_id, o)
    if (latest.current.size > 1000) latest.current.delete(latest.current.keys().next().value)
    if (o.symbol !== symbolRef.current) return
    setOrders((prev) => {
      const next = new Map(prev)
      if (OPEN.has(o.status) && o.limit_price !== null && o.limit_price !== undefined) {
        next.set(o.client_order_id, o)
      } else {
        next.delete(o.client_order_id)
      }
      return next
    })
  })
  useEvent('fill', (f) => {
    if (f.symbol !== symbolRef.current) return
    setFills((prev) =>
      prev.some((x) => x.trade_id === f.trade_id) ? prev : [f, ...prev].slice(0, MARKERS_KEPT),
    )
  })

  // Open orders as price lines.
  useEffect(() => {
    const c = chartRef.current
    if (!c) return
    for (const [id, line] of c.lines) {
      if (!orders.has(id)) {
        c.series.removePriceLine(line)
        c.lines.delete(id)
      }
    }
    c.prices = [...orders.values()].map((o) => Number(o.limit_price))
    for (const [id, o] of orders) {
      const options = {
        price: Number(o.limit_price),
        color: o.side === 'BUY' ? UP : DOWN,
        lineWidth: 1,
        lineStyle: 2, // dashed
        axisLabelVisible: true,
        title: `${o.side} ${o.order_qty}`,
      }
      const line = c.lines.get(id)
      if (line) line.applyOptions(options)
      else c.lines.set(id, c.series.createPriceLine(options))
    }
  }, [orders])

  // Fills as markers (oldest first, as the chart wants them).
  useEffect(() => {
    const c = chartRef.current
    if (!c) return
    const markers = fills
      .map((f) => ({
        time: barTime(f.ts_ns),
        position: f.side === 'BUY' ? 'belowBar' : 'aboveBar',
        color: f.side === 'BUY' ? UP : DOWN,
        shape: f.side === 'BUY' ? 'arrowUp' : 'arrowDown',
        text: `${f.side === 'BUY' ? 'B' : 'S'} ${f.qty}`,
      }))
      .sort((a, b) => a.time - b.time)
    c.markers.setMarkers(markers)
  }, [fills])

  // -- market data, live from /ws/market ---------------------------------------------
  useEffect(() => {
    if (!symbol) return undefined
    let socket = null
    let closed = false
    let retry = null
    let backoff = 500
    let bookTimer = null

    const onTrade = (t) => {
      setTrades((prev) => [t, ...prev].slice(0, TRADES_SHOWN))
      const c = chartRef.current
      if (!c) return
      const time = barTime(t.ts_ns)
      const price = Number(t.price)
      let bar = c.last
      if (bar && time < bar.time) return // older than the open candle: nothing to move
      if (!bar || time > bar.time) {
        bar = { time, open: price, high: price, low: price, close: price }
      } else {
        bar = {
          ...bar,
          high: Math.max(bar.high, price),
          low: Math.min(bar.low, price),
          close: price,
        }
      }
      c.last = bar
      c.series.update(bar)
    }
    const onKline = (k) => {
      const c = chartRef.current
      if (!c) return
      const bar = candle(k)
      if (c.last && bar.time < c.last.time) return
      c.series.update(bar)
      if (!c.last || bar.time >= c.last.time) c.last = bar
    }
    const onBookTop = (b) => {
      pendingBook.current = b
      if (bookTimer === null) {
        bookTimer = setTimeout(() => {
          bookTimer = null
          setBook(pendingBook.current)
        }, BOOK_REFRESH_MS)
      }
    }

    const connect = () => {
      const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:'
      socket = new WebSocket(`${scheme}//${location.host}${withToken('/ws/market')}`)
      setWsState('connecting')
      socket.onopen = () => {
        backoff = 500
        setWsState('open')
        socket.send(
          JSON.stringify({
            action: 'subscribe',
            symbols: [symbol],
            channels: ['trade', 'book_top', 'kline'],
          }),
        )
      }
      socket.onmessage = (message) => {
        let data
        try {
          data = parseJson(message.data)
        } catch {
          return
        }
        if (data.symbol && data.symbol !== symbol) return
        if (data.type === 'trade') onTrade(data)
        else if (data.type === 'book_top') onBookTop(data)
        else if (data.type === 'kline') onKline(data)
        else if (data.type === 'error') setError(data)
      }
      socket.onclose = () => {
        if (closed) return
        setWsState('reconnecting')
        retry = setTimeout(() => {
          retry = null
          connect()
          load() // catch up on what was missed while away
        }, backoff)
        backoff = Math.min(backoff * 2, 5000)
      }
    }
    connect()
    return () => {
      closed = true
      clearTimeout(retry)
      clearTimeout(bookTimer)
      if (socket) socket.close()
    }
  }, [symbol])

  const ordersShown = [...orders.values()]
  const feed = html`<span class=${`badge ${wsState === 'open' ? 'badge-ok' : 'badge-warn'}`}
    data-testid="market-feed" data-state=${wsState} title="The /ws/market feed of this view">
    ${wsState === 'open' ? 'live' : wsState}
  </span>`
  const side = (s) => (s === 'SELL' ? 'sell' : 'buy')
  return html`
    <${Panel} title=${`Market ${symbol || ''}`} actions=${feed} testid="market-view" class="market">
      <${ErrorLine} error=${error} testid="market-error" />
      <div class="market-chart" ref=${container} data-testid="market-chart" role="img"
        aria-label=${`One-minute candles of ${symbol} with your open orders and fills`}></div>
      <div class="market-legend" data-testid="chart-legend">
        ${ordersShown.length === 0 && fills.length === 0
          ? html`<span class="muted">No order or fill of yours on the chart.</span>`
          : null}
        ${ordersShown.map(
          (o) => html`<span class=${`num ${side(o.side)}`} data-testid=${`chart-order-${o.client_order_id}`}
            title="An open order (dashed line)">- - ${orderLabel(o)}</span>`,
        )}
        ${fills.slice(0, 4).map(
          (f) => html`<span class=${`num ${side(f.side)}`} data-testid=${`chart-fill-${f.trade_id}`}
            title="A fill of yours (arrow)">${f.side === 'BUY' ? '▲' : '▼'} ${f.qty} @ ${f.price}</span>`,
        )}
      </div>
      <div class="grid-2 market-side">
        <table class="data market-book" data-testid="book-top">
          <caption>Book top</caption>
          <thead><tr><th scope="col"></th><th scope="col" class="num">Price</th><th scope="col" class="num">Size</th></tr></thead>
          <tbody>
            <tr><th scope="row" class="sell">Ask</th>
              <td class="num sell" data-testid="book-ask">${book?.ask ?? '-'}</td>
              <td class="num">${book?.ask_size ?? '-'}</td></tr>
            <tr><th scope="row" class="buy">Bid</th>
              <td class="num buy" data-testid="book-bid">${book?.bid ?? '-'}</td>
              <td class="num">${book?.bid_size ?? '-'}</td></tr>
          </tbody>
        </table>
        <table class="data market-trades" data-testid="last-trades">
          <caption>Last trades</caption>
          <thead><tr><th scope="col">Time (UTC)</th><th scope="col" class="num">Price</th><th scope="col" class="num">Size</th></tr></thead>
          <tbody>
            ${trades.length === 0
              ? html`<tr><td colspan="3" class="muted">waiting for trades…</td></tr>`
              : trades.map(
                  (t) => html`<tr>
                    <td>${fmtTime(t.ts_ns).slice(11)}</td>
                    <td class=${`num ${side(t.side)}`}>${t.price}</td>
                    <td class="num">${t.size}</td></tr>`,
                )}
          </tbody>
        </table>
      </div>
    </${Panel}>
  `
}
