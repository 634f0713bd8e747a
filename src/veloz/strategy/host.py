"""The strategy host: runs strategies on the trading core, the same way live and in a
backtest.

It hands each strategy the market data of its symbol and the events of its own orders,
places its orders through an `OrderPort` (the core's own order path, so risk, the OMS and,
live, the journal apply to them exactly as to anyone's) and keeps its lifecycle (added,
running, paused, stopped, removed), which the runtime records through `on_state_change`
so that a restart resumes it (`restore`). Its position and open orders are the core's,
derived from the orders that carry its id. A callback that raises stops that
strategy alone: its open orders are cancelled, the error is logged with its traceback and
kept for the views; every other strategy and the engine carry on.
"""

import logging
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Protocol

import msgspec

from veloz.model.commands import CancelOrder, SubmitOrder
from veloz.model.enums import OrderSide, OrderType, StrategyState, TimeInForce
from veloz.model.errors import CommandRejected, ErrorCode, VelozError
from veloz.model.events import OrderEvent, OrderFilled, StrategyChanged
from veloz.model.instruments import Instrument
from veloz.model.market import PriceBar, QuoteTick, TradeTick
from veloz.model.orders import Order
from veloz.portfolio.positions import Position
from veloz.risk.rate import TokenBucket
from veloz.strategy.base import Strategy, StrategyParams
from veloz.strategy.deadline import CallbackDeadline
from veloz.strategy.registry import parse_params, strategy_class

logger = logging.getLogger(__name__)
ZERO = Decimal(0)
# Read once for the order path: on Python 3.11 reading a member off its enum class
# (`StrategyState.RUNNING`) takes the slow attribute path of a class with `__getattr__`.
RUNNING = StrategyState.RUNNING
# Orders a second one strategy may send (and as many at once): far above what a strategy
# means to do, low enough that a runaway loop is stopped within a second.
MAX_ORDERS_PER_S = 250.0


BarHandler = Callable[[PriceBar], None]


class OrderPort(Protocol):
    """How the host places orders: synchronously into the core's order path."""

    def submit(self, command: SubmitOrder) -> Order: ...

    def cancel(self, command: CancelOrder) -> None: ...

    def order(self, client_order_id: str) -> Order | None: ...

    def open_orders(self, strategy_id: str) -> list[Order]:
        """The strategy's orders that are not final yet."""
        ...

    def strategy_position(self, strategy_id: str) -> Position | None: ...


class StrategySpec(msgspec.Struct, frozen=True, kw_only=True):
    """What a strategy instance is: the journal keeps it, so a restart rebuilds it."""

    strategy_id: str
    name: str  # a built-in name or module:Class
    symbol: str
    params: dict[str, Any]


class StrategyCounts(msgspec.Struct, kw_only=True):
    orders: int = 0
    denied: int = 0
    fills: int = 0
    errors: int = 0


class RunningStrategy:
    """One strategy instance and what the host keeps about it."""

    def __init__(self, spec: StrategySpec, strategy: Strategy, params: StrategyParams) -> None:
        self.spec = spec
        self.strategy = strategy
        self.params = params
        self.state = StrategyState.ADDED
        # on_start runs once per process, when the strategy first runs (or resumes).
        self.started = False
        self.counts = StrategyCounts()
        self.error: str | None = None
        self.changed_by = "engine"
        self.timer_interval_ns: int | None = None
        self.timer_due_ns: int | None = None
        self.bucket: TokenBucket | None = None
        # Callbacks the strategy left as the base class's no-ops are not called.
        kind = type(strategy)
        self.wants_fills = kind.on_fill is not Strategy.on_fill
        self.wants_updates = kind.on_order_update is not Strategy.on_order_update

    @property
    def strategy_id(self) -> str:
        return self.spec.strategy_id

    def change(self, ts_ns: int) -> StrategyChanged:
        """This strategy's lifecycle now, as the journal records it."""
        return StrategyChanged(
            strategy_id=self.spec.strategy_id,
            state=self.state,
            name=self.spec.name,
            symbol=self.spec.symbol,
            params=dict(self.spec.params),
            reason=self.error or "",
            actor=self.changed_by,
            ts_ns=ts_ns,
        )


class StrategyHost:
    def __init__(
        self,
        orders: OrderPort,
        instruments: Mapping[str, Instrument],
        now_ns: Callable[[], int],
        *,
        search_path: tuple[str, ...] = (),
        max_orders_per_s: float = MAX_ORDERS_PER_S,
        callback_deadline_s: float | None = None,
    ) -> None:
        """A strategy that sends more than `max_orders_per_s` orders a second (beyond a
        burst of as many) is stopped: a runaway loop must not flood the venue. With
        `callback_deadline_s`, a callback that runs longer (a loop that never returns) is
        interrupted and its strategy stopped (`deadline.py`)."""
        self._orders = orders
        self._instruments = instruments
        self._now_ns = now_ns
        self._search_path = search_path
        self._strategies: dict[str, RunningStrategy] = {}
        # The running strategies per symbol, rebuilt on every state change, so that a bar
        # costs one dict lookup and one call per strategy.
        self._running: dict[str, tuple[RunningStrategy, ...]] = {}
        self._bar_handlers: dict[str, tuple[tuple[RunningStrategy, BarHandler], ...]] = {}
        # Moves on every lifecycle change, so a cached `bar_handlers` knows it is stale.
        self.version = 0
        # The running strategies with a timer; a bar loop calls `on_clock` only while there
        # are some. Mutated, never rebound.
        self.timed: set[RunningStrategy] = set()
        self._max_orders_per_s = max_orders_per_s
        self._deadline = (
            CallbackDeadline(callback_deadline_s) if callback_deadline_s is not None else None
        )
        # Called after each lifecycle change (the live runtime journals them).
        self.on_state_change: Callable[[RunningStrategy], None] | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def add(self, spec: StrategySpec, actor: str = "engine") -> RunningStrategy:
        """Build the strategy from `spec`; CommandRejected (nothing added) if the name,
        the symbol, the id or a parameter is wrong."""
        running = self._build(spec)
        self._strategies[spec.strategy_id] = running
        self._changed(running, actor)
        return running

    def restore(self, spec: StrategySpec, state: StrategyState, reason: str = "") -> None:
        """Rebuild a strategy as the journal last recorded it, and run it again if it was
        running; nothing is recorded (it already is). A strategy that can no longer be
        built (its code or symbol is gone) is kept stopped, with why."""
        try:
            running = self._build(spec)
        except CommandRejected as exc:
            logger.error("strategy %s cannot be resumed: %s", spec.strategy_id, exc.message)
            return
        running.state, running.error = state, reason or None
        self._strategies[spec.strategy_id] = running
        if state is StrategyState.RUNNING:
            running.started = True
            if not self._guard(running, running.strategy.on_start):
                return
        self._index()

    def _build(self, spec: StrategySpec) -> RunningStrategy:
        if spec.strategy_id in self._strategies:
            raise CommandRejected(
                f"strategy id {spec.strategy_id} is already used",
                code=ErrorCode.DUPLICATE_STRATEGY_ID,
            )
        instrument = self._instruments.get(spec.symbol)
        if instrument is None:
            raise CommandRejected(
                f"unknown symbol {spec.symbol}; trading {', '.join(sorted(self._instruments))}",
                code=ErrorCode.UNKNOWN_SYMBOL,
            )
        cls = strategy_class(spec.name, self._search_path)
        params = parse_params(cls, spec.params)
        ctx = _Context(self, spec, instrument)
        running = RunningStrategy(spec, cls(params, ctx), params)
        running.bucket = TokenBucket(self._max_orders_per_s, self._now_ns)
        ctx.running = running
        return running

    def start(self, strategy_id: str, actor: str = "engine") -> RunningStrategy:
        running = self.get(strategy_id)
        if running.state is StrategyState.RUNNING:
            return running
        if running.state is StrategyState.STOPPED:
            raise CommandRejected(
                f"strategy {strategy_id} is stopped; add it again to run it",
                code=ErrorCode.BAD_STATE,
            )
        running.state = StrategyState.RUNNING
        running.error = None
        if not running.started:
            running.started = True
            if not self._guard(running, running.strategy.on_start):
                return running
        self._changed(running, actor)
        return running

    def pause(self, strategy_id: str, actor: str = "engine") -> RunningStrategy:
        """Stop calling the strategy; its resting orders stay."""
        running = self.get(strategy_id)
        if running.state is not StrategyState.RUNNING:
            raise CommandRejected(
                f"strategy {strategy_id} is {running.state}, not running", code=ErrorCode.BAD_STATE
            )
        running.state = StrategyState.PAUSED
        self._changed(running, actor)
        return running

    def resume(self, strategy_id: str, actor: str = "engine") -> RunningStrategy:
        running = self.get(strategy_id)
        if running.state is not StrategyState.PAUSED:
            raise CommandRejected(
                f"strategy {strategy_id} is {running.state}, not paused", code=ErrorCode.BAD_STATE
            )
        return self.start(strategy_id, actor)

    def stop(self, strategy_id: str, reason: str = "", actor: str = "engine") -> RunningStrategy:
        """Call `on_stop`, then cancel the strategy's open orders."""
        running = self.get(strategy_id)
        if running.state is StrategyState.STOPPED:
            return running
        was_running = running.state is StrategyState.RUNNING
        running.state = StrategyState.STOPPED
        if reason:
            running.error = reason
        if was_running:
            try:
                running.strategy.on_stop()
            except Exception:
                logger.exception("strategy %s failed in on_stop", strategy_id)
        self._cancel_all(running)
        self._set_timer(running, None)
        self._changed(running, actor)
        return running

    def remove(self, strategy_id: str, actor: str = "engine") -> None:
        """Stop the strategy and forget it."""
        running = self.stop(strategy_id, actor=actor)
        running.state = StrategyState.REMOVED
        del self._strategies[strategy_id]
        self._changed(running, actor)

    def get(self, strategy_id: str) -> RunningStrategy:
        running = self._strategies.get(strategy_id)
        if running is None:
            raise CommandRejected(f"no strategy {strategy_id}", code=ErrorCode.NOT_FOUND)
        return running

    def all(self) -> list[RunningStrategy]:
        return list(self._strategies.values())

    # -- input -----------------------------------------------------------------------------

    def on_bar(self, bar: PriceBar) -> None:
        for running, on_bar in self._bar_handlers.get(bar.symbol, ()):
            self._guard(running, on_bar, bar)

    def bar_handlers(self, symbol: str) -> tuple[tuple[RunningStrategy, BarHandler], ...]:
        """The running strategies of `symbol` with their `on_bar`, for a bar loop that
        calls them itself (a backtest); valid until `version` changes. Whoever calls one
        hands what it raises to `failed`."""
        return self._bar_handlers.get(symbol, ())

    def on_quote(self, quote: QuoteTick) -> None:
        for running in self._running.get(quote.symbol, ()):
            self._guard(running, running.strategy.on_quote, quote)

    def on_trade(self, trade: TradeTick) -> None:
        for running in self._running.get(trade.symbol, ()):
            self._guard(running, running.strategy.on_trade, trade)

    def on_clock(self, now_ns: int) -> None:
        """Fire the timers that are due. A timer that fell behind fires once and is
        rescheduled from now: a burst of stale calls helps no strategy."""
        if not self.timed:
            return
        for running in list(self.timed):
            due = running.timer_due_ns
            if due is None or now_ns < due or running.state is not StrategyState.RUNNING:
                continue
            assert running.timer_interval_ns is not None
            running.timer_due_ns = now_ns + running.timer_interval_ns
            self._guard(running, running.strategy.on_timer, now_ns)

    def _set_timer(self, running: RunningStrategy, interval_ns: int | None) -> None:
        if interval_ns is not None and interval_ns <= 0:
            raise ValueError(f"a timer interval must be positive, got {interval_ns}")
        running.timer_interval_ns = interval_ns
        if interval_ns is None:
            running.timer_due_ns = None
            self.timed.discard(running)
        else:
            running.timer_due_ns = self._now_ns() + interval_ns
            self.timed.add(running)

    def on_order_event(self, event: OrderEvent, order: Order) -> None:
        """An event of an order, as recorded; `order` as it stood right after it."""
        strategy_id = order.strategy_id
        if strategy_id is None:
            return
        running = self._strategies.get(strategy_id)
        if running is None:
            return
        is_fill = type(event) is OrderFilled  # exact: isinstance on a Struct class is slow
        if is_fill:
            running.counts.fills += 1
        wants_fills, wants_updates = running.wants_fills, running.wants_updates
        if not (wants_fills or wants_updates) or running.state is not RUNNING:
            return
        if wants_fills and is_fill and not self._guard(running, running.strategy.on_fill, event):
            return
        if wants_updates:
            self._guard(running, running.strategy.on_order_update, order)

    # -- orders ----------------------------------------------------------------------------

    def _submit(self, running: RunningStrategy, command: SubmitOrder) -> Order | None:
        if running.state is not RUNNING:
            return None  # stopped while it was still deciding (its own error, a flood)
        assert running.bucket is not None
        if not running.bucket.take():
            logger.error(
                "strategy %s sent more than %g orders/s and is stopped",
                running.strategy_id,
                self._max_orders_per_s,
            )
            self.stop(
                running.strategy_id, f"flooded: more than {self._max_orders_per_s:g} orders/s"
            )
            return None
        try:
            order = self._orders.submit(command)
        except CommandRejected as exc:
            running.counts.denied += 1
            logger.info("strategy %s order refused: %s", running.strategy_id, exc)
            return None
        running.counts.orders += 1
        return order

    def _cancel(self, running: RunningStrategy, client_order_id: str) -> None:
        if all(o.client_order_id != client_order_id for o in self.open_orders(running)):
            raise CommandRejected(
                f"order {client_order_id} is not an open order of {running.strategy_id}",
                code=ErrorCode.NOT_FOUND,
            )
        try:
            self._orders.cancel(CancelOrder(client_order_id=client_order_id))
        except CommandRejected as exc:
            if exc.code != "order_final":
                logger.info("strategy %s cancel refused: %s", running.strategy_id, exc)

    def _cancel_all(self, running: RunningStrategy) -> None:
        for order in self.open_orders(running):
            client_order_id = order.client_order_id
            try:
                self._orders.cancel(CancelOrder(client_order_id=client_order_id))
            except VelozError as exc:
                logger.warning(
                    "cancelling %s of stopped strategy %s: %s",
                    client_order_id,
                    running.strategy_id,
                    exc,
                )

    # -- internals -------------------------------------------------------------------------

    def _guard(self, running: RunningStrategy, callback: Callable[..., None], *args: Any) -> bool:
        try:
            if self._deadline is None:
                callback(*args)
            else:
                with self._deadline:
                    callback(*args)
        except Exception as exc:
            self.failed(running, callback.__name__, exc)
            return False
        return True

    def failed(self, running: RunningStrategy, where: str, error: Exception) -> None:
        """`running` raised `error` in `where`: stop it, and only it."""
        running.counts.errors += 1
        logger.error(
            "strategy %s raised in %s and is stopped", running.strategy_id, where, exc_info=error
        )
        self.stop(running.strategy_id, f"{type(error).__name__} in {where}: {error}")

    def open_orders(self, running: RunningStrategy) -> list[Order]:
        return self._orders.open_orders(running.strategy_id)

    def position(self, running: RunningStrategy) -> Position | None:
        return self._orders.strategy_position(running.strategy_id)

    def _changed(self, running: RunningStrategy, actor: str) -> None:
        running.changed_by = actor
        self._index()
        if self.on_state_change is not None:
            self.on_state_change(running)

    def _index(self) -> None:
        by_symbol: dict[str, list[RunningStrategy]] = {}
        for candidate in self._strategies.values():
            if candidate.state is StrategyState.RUNNING:
                by_symbol.setdefault(candidate.spec.symbol, []).append(candidate)
        self._running = {symbol: tuple(found) for symbol, found in by_symbol.items()}
        self._bar_handlers = {
            symbol: tuple((r, r.strategy.on_bar) for r in found)
            for symbol, found in by_symbol.items()
        }
        self.version += 1


class _Context:
    """A strategy's `StrategyContext`: its orders carry its id and trade its symbol."""

    # Read once for the order path: on Python 3.11 reading a member off its enum class
    # (`OrderSide.BUY`) takes the slow attribute path of a class with `__getattr__`.
    _BUY, _SELL = OrderSide.BUY, OrderSide.SELL
    _MARKET, _IOC = OrderType.MARKET, TimeInForce.IOC

    def __init__(self, host: StrategyHost, spec: StrategySpec, instrument: Instrument) -> None:
        self._host = host
        self.strategy_id = spec.strategy_id
        self.symbol = spec.symbol
        self._instrument = instrument
        self.running: RunningStrategy | None = None

    def time_ns(self) -> int:
        return self._host._now_ns()

    def set_timer(self, interval_ns: int | None) -> None:
        assert self.running is not None
        self._host._set_timer(self.running, interval_ns)

    def buy_market(self, qty: Decimal) -> Order | None:
        return self._market(self._BUY, qty)

    def sell_market(self, qty: Decimal) -> Order | None:
        return self._market(self._SELL, qty)

    def submit_limit(
        self, side: OrderSide, qty: Decimal, price: Decimal, tif: TimeInForce = TimeInForce.GTC
    ) -> Order | None:
        return self._send(
            SubmitOrder(
                symbol=self.symbol,
                side=side,
                qty=qty,
                price=price,
                order_type=OrderType.LIMIT,
                time_in_force=tif,
                strategy_id=self.strategy_id,
            )
        )

    def cancel(self, client_order_id: str) -> None:
        assert self.running is not None
        self._host._cancel(self.running, client_order_id)

    def position(self) -> Decimal:
        # `StrategyHost.position` without its hops: strategies ask before every order.
        position = self._host._orders.strategy_position(self.strategy_id)
        return position.qty if position is not None else ZERO

    def open_orders(self) -> list[Order]:
        assert self.running is not None
        return self._host.open_orders(self.running)

    def price_increment(self) -> Decimal:
        return self._instrument.price_increment

    def size_increment(self) -> Decimal:
        return self._instrument.size_increment

    def _market(self, side: OrderSide, qty: Decimal) -> Order | None:
        assert self.running is not None
        command = SubmitOrder(
            symbol=self.symbol,
            side=side,
            qty=qty,
            order_type=self._MARKET,
            time_in_force=self._IOC,
            strategy_id=self.strategy_id,
        )
        return self._host._submit(self.running, command)

    def _send(self, command: SubmitOrder) -> Order | None:
        assert self.running is not None
        return self._host._submit(self.running, command)
