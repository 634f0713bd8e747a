"""The backtester: the trading core that runs live, on a simulated clock, fed bars from
files, trading against the simulated exchange's matching core.

    for each bar, in time order:
        the clock moves to the bar's time
        orders held for this bar's open reach the exchange there (fill model next_open)
        resting orders the bar's range reaches trade, along O->H->L->C (or O->L->H->C)
        the strategies see the bar; what they send trades at its close (fill model close)
        or waits for the next bar's open
        journal-free: events reach the strategies as soon as the core has applied them

The bar loop does no work the strategies did not ask for: the exchange sees prices only
while it holds resting orders or receives new ones, and the core marks the book only when
an order needs it. Order and fill accounting stays exact (Decimal); bars are floats.
"""

import gc
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from enum import StrEnum

import msgspec
import numpy as np

from veloz.backtest.data import BarSeries
from veloz.clock import SimulatedClock
from veloz.engine.core import CoreConfig, TradingCore
from veloz.execution.venue import VenueOrder
from veloz.execution.venues.sim import SimVenueConfig
from veloz.execution.venues.sim_exchange import SimExchange
from veloz.model.commands import CancelOrder, SubmitOrder
from veloz.model.events import Event, OrderEvent, OrderFilled
from veloz.model.instruments import Instrument, default_instrument
from veloz.model.market import PriceBar, QuoteTick
from veloz.model.orders import Order
from veloz.portfolio.positions import Position
from veloz.risk.engine import RiskConfig
from veloz.risk.limits import LoadedLimits, RiskLimits, SymbolLimits, builtin_limits
from veloz.strategy.host import BarHandler, RunningStrategy, StrategyHost, StrategySpec

# The depth a bar's price shows: the backtester does not model the book, so an order
# trades whole at the bar's price.
_UNLIMITED = Decimal(10) ** 12


class FillModel(StrEnum):
    CLOSE = "close"  # an order sent on a bar trades at that bar's close
    NEXT_OPEN = "next_open"  # ... at the next bar's open


class BarPath(StrEnum):
    """The order in which a bar's prices are assumed to have traded."""

    OHLC = "ohlc"
    OLHC = "olhc"


class AccountType(StrEnum):
    CASH = "cash"  # spot: balances must cover every order, no short
    MARGIN = "margin"  # the net position may go short; linear PnL in the quote asset


def _no_limits() -> RiskConfig:
    """A backtest trades without limits unless it is given some."""
    limits = RiskLimits(
        defaults=SymbolLimits(price_band_pct=None),
        drawdown_warning_pct=None,
        drawdown_critical_pct=None,
    )
    return RiskConfig(limits=LoadedLimits(limits=limits, source=None, loaded_at_ns=0, sha256=None))


def _default_balances() -> dict[str, Decimal]:
    return {"USDT": Decimal(10_000)}


class BacktestConfig(msgspec.Struct, frozen=True, kw_only=True):
    account: AccountType = AccountType.CASH
    balances: dict[str, Decimal] = msgspec.field(default_factory=_default_balances)
    maker_fee_bps: Decimal = Decimal(10)
    taker_fee_bps: Decimal = Decimal(10)
    slippage_bps: Decimal = Decimal(0)
    fill: FillModel = FillModel.CLOSE
    path: BarPath = BarPath.OHLC
    risk: RiskConfig = msgspec.field(default_factory=_no_limits)
    # Seeds the simulated exchange's order and trade ids.
    seed: int = 0


class FillRecord(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    ts_ns: int
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    client_order_id: str
    strategy_id: str | None


class BacktestResult(msgspec.Struct, kw_only=True):
    bars: int
    orders: int
    denied: int
    fills: list[FillRecord]
    fees: Decimal
    final_equity: Decimal
    final_positions: dict[str, Decimal]
    final_balances: dict[str, Decimal]
    start_ns: int
    end_ns: int
    seconds: float

    @property
    def bars_per_s(self) -> float:
        return self.bars / self.seconds if self.seconds > 0 else 0.0


class _Feed:
    """One symbol's bars, and the price the market stands at now: `price`, as a quote
    with no spread made only when something asks for it (`quote`)."""

    __slots__ = ("cached", "close", "high", "low", "open", "price", "symbol", "ts", "volume")

    def __init__(self, series: BarSeries) -> None:
        if len(series) > 1 and bool((np.diff(series.ts_ns) < 0).any()):
            # Checked once here: the bar loop then sets the clock without `advance_to`'s
            # check on every bar.
            raise ValueError(f"{series.symbol}: the bars are not in time order")
        self.symbol = series.symbol
        self.ts: list[int] = series.ts_ns.tolist()
        self.open: list[float] = series.open.tolist()
        self.high: list[float] = series.high.tolist()
        self.low: list[float] = series.low.tolist()
        self.close: list[float] = series.close.tolist()
        self.volume: list[float] = series.volume.tolist()
        self.price = 0.0
        self.cached: QuoteTick | None = None

    def point(self, price: float) -> None:
        """The market is at `price` now."""
        self.price = price
        self.cached = None

    def quote(self, ts_ns: int) -> QuoteTick:
        quote = self.cached
        if quote is None or quote.ts_ns != ts_ns:
            price = Decimal(repr(self.price))
            quote = self.cached = QuoteTick(
                symbol=self.symbol,
                bid=price,
                ask=price,
                bid_size=_UNLIMITED,
                ask_size=_UNLIMITED,
                ts_ns=ts_ns,
            )
        return quote


# One bar of one feed: (feed, ts_ns, open, high, low, close, volume).
_Row = tuple["_Feed", int, float, float, float, float, float]


class _Sink:
    """Events reach the strategies once the core call that made them has returned, in
    order, as durable events do live. Only the events of orders are kept: they are all a
    strategy hears of, and all the result records (its fills)."""

    accepting = True

    def __init__(self) -> None:
        self.events: deque[tuple[OrderEvent, Order]] = deque()

    def emit(self, event: Event, order: Order | None) -> None:
        if order is not None and isinstance(event, OrderEvent):
            self.events.append((event, order))


class _Router:
    """Venue requests reach the exchange at once (fill model close) or at the next bar's
    open (next_open)."""

    def __init__(self, exchange: SimExchange, hold: bool) -> None:
        self._exchange = exchange
        self._hold = hold
        self.held: list[VenueOrder | tuple[str, str]] = []

    def send_order(self, order: VenueOrder) -> None:
        if self._hold:
            self.held.append(order)
        else:
            self._exchange.submit(order)

    def send_cancel(self, client_order_id: str, symbol: str) -> None:
        if self._hold:
            self.held.append((client_order_id, symbol))
        else:
            self._exchange.cancel(client_order_id, symbol)

    def release(self, symbol: str) -> None:
        """Hand the held requests of `symbol` to the exchange, in the order they came."""
        keep: list[VenueOrder | tuple[str, str]] = []
        for request in self.held:
            if isinstance(request, VenueOrder):
                if request.symbol == symbol:
                    self._exchange.submit(request)
                    continue
            elif request[1] == symbol:
                self._exchange.cancel(*request)
                continue
            keep.append(request)
        # In place: the bar loop holds this list and tests it on every bar.
        self.held[:] = keep


class BacktestEngine:
    """One backtest: bars of one or more symbols, one or more strategies, one account."""

    def __init__(
        self,
        config: BacktestConfig,
        bars: Mapping[str, BarSeries],
        strategies: list[StrategySpec],
        instruments: Mapping[str, Instrument] | None = None,
        search_path: tuple[str, ...] = (),
    ) -> None:
        """Raises CommandRejected (nothing run) for a strategy, symbol or parameter that
        is wrong."""
        if not bars:
            raise ValueError("a backtest needs bars of at least one symbol")
        self.config = config
        self._feeds = {symbol: _Feed(series) for symbol, series in bars.items()}
        self.instruments = dict(instruments or {}) or {
            symbol: default_instrument(symbol, Decimal(repr(feed.close[0])))
            for symbol, feed in self._feeds.items()
        }
        start = min(feed.ts[0] for feed in self._feeds.values())
        self.clock = SimulatedClock(start)
        self._sink = _Sink()
        self.exchange = SimExchange(
            SimVenueConfig(
                latency_ms=0,
                maker_fee_bps=config.maker_fee_bps,
                taker_fee_bps=config.taker_fee_bps,
                slippage_bps=config.slippage_bps,
                fee_asset="quote",
                starting_balances=dict(config.balances),
                margin=config.account is AccountType.MARGIN,
                # The fills are recorded here; the exchange need not remember old orders.
                order_history_limit=1_000,
            ),
            self.clock,
            self.instruments,
            self._venue_quote,
            id_seed=config.seed,
        )
        self._router = _Router(self.exchange, hold=config.fill is FillModel.NEXT_OPEN)
        risk = config.risk
        if config.account is AccountType.MARGIN and risk.margin_leverage is None:
            risk = msgspec.structs.replace(risk, margin_leverage=Decimal(1))
        self.core = TradingCore(
            CoreConfig(
                retained_final_orders=1_000,
                risk=risk,
                record_latency=False,
                # Only limits that act on the equity need the book valued on every price.
                value_every_quote=(risk.limits or builtin_limits()).limits.act_on_equity,
            ),
            self.clock,
            self.instruments,
            self._sink,
            self._router,
        )
        self.host = StrategyHost(
            _OrderPort(self), self.instruments, self.clock.time_ns, search_path=search_path
        )
        self.host.on_state_change = lambda running: self.core.record_strategy(
            running.change(self.clock.time_ns())
        )
        self.fills: list[FillRecord] = []
        self._marked: dict[str, QuoteTick] = {}
        self.core.seed_balances(self.exchange.balances())
        self.core.acting = True
        self._settle()
        for spec in strategies:
            self.host.add(spec)

    def run(self, progress: Callable[[int, int], None] | None = None) -> BacktestResult:
        for running in self.host.all():
            self.host.start(running.strategy_id)
        self._settle()
        # What the run starts with (the bars, the engine, every module) lives through it:
        # frozen, it is not re-scanned by the collector's full passes, which the objects
        # the order path makes set off now and then (one pass over 45,000 bars took as
        # long as 400 orders). Objects the run makes are collected as usual. A freeze made
        # by someone else (the live engine makes one) is left as it is: not ours to undo.
        freeze = gc.get_freeze_count() == 0
        if freeze:
            gc.freeze()
        try:
            started = time.perf_counter()
            bars = self._loop(progress)
            for feed in self._feeds.values():
                feed.point(feed.close[-1])
                self._mark(feed, feed.ts[-1])
            self._settle()
            seconds = time.perf_counter() - started
        finally:
            if freeze:
                gc.unfreeze()
        return self._result(bars, seconds)

    # -- the bar loop -------------------------------------------------------------------

    def _loop(self, progress: Callable[[int, int], None] | None) -> int:
        """Every bar of every symbol in time order. The body runs once per bar, so it
        keeps to local names and does nothing a quiet bar does not need."""
        feeds = list(self._feeds.values())
        rows = _time_order(feeds)
        total = sum(len(feed.ts) for feed in feeds)
        # The clock, timers and resting books are read directly rather than through
        # `clock.advance_to`, `host.on_clock` and `exchange.has_resting`: three calls per
        # bar that nearly always do nothing. The bars are in time order (`_Feed` checks).
        clock = self.clock
        first_ns = min(feed.ts[0] for feed in feeds)
        if first_ns < clock.now_ns:  # a second run: what `advance_to` would refuse
            raise ValueError(f"clock cannot go back from {clock.now_ns} to {first_ns}")
        host, timed = self.host, self.host.timed
        books, held, sink_events = self.exchange.books, self._router.held, self._sink.events
        next_open = self.config.fill is FillModel.NEXT_OPEN
        high_first = self.config.path is BarPath.OHLC
        version = -1
        handlers: dict[str, tuple[tuple[RunningStrategy, BarHandler], ...]] = {}
        # Progress is told after each hundredth of the bars, between chunks, rather than
        # checked on every bar.
        chunk = max(total // 100, 1) if progress is not None else total
        done = 0
        while done < total:
            for feed, ts, open_, high, low, close, volume in itertools.islice(rows, chunk):
                clock.now_ns = ts
                symbol = feed.symbol
                if next_open and held:
                    feed.point(open_)
                    self._router.release(symbol)
                    self._settle()
                if books and books.get(symbol):
                    prices = (open_, high, low, close) if high_first else (open_, low, high, close)
                    self._walk(feed, ts, prices)
                feed.price, feed.cached = close, None
                if timed:
                    host.on_clock(ts)
                if host.version != version:
                    version = host.version
                    handlers = {f.symbol: host.bar_handlers(f.symbol) for f in feeds}
                receivers = handlers[symbol]
                if receivers:
                    bar = PriceBar(symbol, ts, open_, high, low, close, volume)
                    if len(receivers) == 1:
                        # One strategy on the symbol, the usual case: called without a loop
                        # (and the iterator it would make on every bar).
                        ((running, on_bar),) = receivers
                        try:
                            on_bar(bar)
                        except Exception as exc:
                            host.failed(running, "on_bar", exc)
                    else:
                        self._deliver(receivers, bar)
                    # Whatever a strategy sent was emitted by the core first.
                    if sink_events:
                        self._settle()
            done = min(done + chunk, total)
            if progress is not None:
                progress(done, total)
        return total

    def _deliver(
        self, receivers: tuple[tuple[RunningStrategy, BarHandler], ...], bar: PriceBar
    ) -> None:
        """`bar` to each strategy of its symbol; one that raises is stopped, alone."""
        for running, on_bar in receivers:
            try:
                on_bar(bar)
            except Exception as exc:
                self.host.failed(running, "on_bar", exc)

    def _walk(self, feed: _Feed, ts: int, prices: tuple[float, float, float, float]) -> None:
        """Let the bar's prices reach the resting orders, in the path's order."""
        for price in prices:
            feed.point(price)
            self.exchange.on_quote(feed.quote(ts))
            self._settle()

    def _settle(self) -> None:
        """Deliver what the core and the exchange produced, until both are quiet: events
        to the strategies first, then the exchange's reports to the core."""
        events = self._sink.events
        # Bound once: this runs after every order, for each of its events and reports.
        next_event, on_order_event = events.popleft, self.host.on_order_event
        drain, on_report = self.exchange.drain, self.core.on_report
        while True:
            while events:
                event, order = next_event()
                if type(event) is OrderFilled:  # exact: isinstance on a Struct class is slow
                    self._record_fill(event, order)
                on_order_event(event, order)
            reports = drain()
            if not reports:
                return
            for report in reports:
                on_report(report)

    # -- what the core and the exchange ask for -----------------------------------------

    def _venue_quote(self, symbol: str) -> QuoteTick | None:
        feed = self._feeds.get(symbol)
        return None if feed is None else feed.quote(self.clock.now_ns)

    def _mark(self, feed: _Feed, ts: int) -> None:
        """Tell the core the market `feed` stands at now, unless it already knows."""
        quote = feed.quote(ts)
        if self._marked.get(feed.symbol) is not quote:
            self._marked[feed.symbol] = quote
            self.core.on_quote(quote)

    def _submit(self, command: SubmitOrder) -> Order:
        feed = self._feeds.get(command.symbol)
        if feed is not None:
            # The core values the order (market reference price, risk) at the market now.
            self._mark(feed, self.clock.now_ns)
        return self.core.submit(command)[0]

    # -- the result ---------------------------------------------------------------------

    def _record_fill(self, fill: OrderFilled, order: Order) -> None:
        self.fills.append(
            FillRecord(
                ts_ns=fill.ts_ns,
                symbol=fill.symbol,
                side=fill.side._value_,  # the attribute behind `.value`, without the property
                qty=fill.qty,
                price=fill.price,
                fee=fill.fee,
                fee_asset=fill.fee_asset,
                client_order_id=fill.client_order_id,
                strategy_id=order.strategy_id,
            )
        )

    def _result(self, bars: int, seconds: float) -> BacktestResult:
        portfolio = self.core.portfolio
        counts = [running.counts for running in self.host.all()]
        return BacktestResult(
            bars=bars,
            orders=sum(c.orders for c in counts),
            denied=sum(c.denied for c in counts),
            fills=self.fills,
            fees=sum((p.fees for p in portfolio.positions()), Decimal(0)),
            final_equity=portfolio.equity(),
            final_positions={p.symbol: p.qty for p in portfolio.positions()},
            final_balances={b.asset: b.total for b in portfolio.balances()},
            start_ns=min(feed.ts[0] for feed in self._feeds.values()),
            end_ns=max(feed.ts[-1] for feed in self._feeds.values()),
            seconds=seconds,
        )


class _OrderPort:
    # Bound once, the engine's and the core's own methods: what a strategy asks for on
    # every order takes no extra hop.
    submit: Callable[[SubmitOrder], Order]
    strategy_position: Callable[[str], Position | None]

    def __init__(self, engine: BacktestEngine) -> None:
        self._engine = engine
        self.submit = engine._submit
        self.strategy_position = engine.core.strategy_position

    def cancel(self, command: CancelOrder) -> None:
        self._engine.core.cancel(command)

    def order(self, client_order_id: str) -> Order | None:
        return self._engine.core.oms.get(client_order_id)

    def open_orders(self, strategy_id: str) -> list[Order]:
        return self._engine.core.strategy_open_orders(strategy_id)


def _time_order(feeds: list[_Feed]) -> Iterator[_Row]:
    """Every bar of every feed as a `_Row`, in time order; bars at the same time in the
    feeds' order. Whole rows rather than (feed, index): the bar loop unpacks one flat
    tuple instead of indexing six lists."""
    if len(feeds) == 1:
        feed = feeds[0]
        # A zip of the columns: no generator frame per bar.
        return zip(
            itertools.repeat(feed),
            feed.ts,
            feed.open,
            feed.high,
            feed.low,
            feed.close,
            feed.volume,
        )
    keyed = sorted(
        (ts, feed_index, i) for feed_index, feed in enumerate(feeds) for i, ts in enumerate(feed.ts)
    )
    return (_row(feeds[feed_index], i) for _, feed_index, i in keyed)


def _row(feed: _Feed, i: int) -> _Row:
    return (
        feed,
        feed.ts[i],
        feed.open[i],
        feed.high[i],
        feed.low[i],
        feed.close[i],
        feed.volume[i],
    )
