"""The trading core: one synchronous, deterministic state machine that live trading, paper
trading and backtests share.

    command -> events:  submit, cancel, mode changes, venue reports and market data go in;
                        each state change is applied, then handed to the `EventSink`, and
                        each venue request to the `OrderRouter` (see `ports.py`)
    state:              orders (`oms/`), the account (`portfolio/`), the limits, breaker
                        and drawdown policy (`risk/`), the trading mode, the latest quotes

No asyncio, no files, no network: time comes from a `Clock`, and what a command waits
for (durability, a venue's answer) is the runtime's business. State changes go through
`apply` only, which live decisions and journal replay share, so a replay rebuilds exactly
what trading built.
"""

import logging
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import msgspec

from veloz.clock import Clock
from veloz.engine.checkpoint import EngineCheckpoint
from veloz.engine.ports import EventSink, OrderRouter
from veloz.engine.stats import EngineStats
from veloz.execution.venue import VenueOrder
from veloz.model.commands import CancelOrder, SubmitOrder
from veloz.model.enums import (
    ModeAction,
    OrderSide,
    OrderStatus,
    OrderType,
    StrategyState,
    TradingMode,
)
from veloz.model.errors import CommandRejected, ErrorCode, InvalidTransition
from veloz.model.events import (
    BalanceSet,
    Event,
    OrderAccepted,
    OrderCancelled,
    OrderCancelRejected,
    OrderCancelRequested,
    OrderDenied,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReport,
    OrderSubmitted,
    StrategyChanged,
    TradingModeChanged,
)
from veloz.model.instruments import Instrument
from veloz.model.market import QuoteTick
from veloz.model.orders import Order
from veloz.oms.manager import OrderManager
from veloz.oms.validation import conform
from veloz.portfolio.portfolio import Portfolio
from veloz.portfolio.positions import Position
from veloz.risk.checks import Denial, Exposure, OrderIntent, needs_margin
from veloz.risk.engine import RiskConfig, RiskEngine
from veloz.risk.limits import LoadedLimits, RiskLimitsError
from veloz.risk.monitor import ModeChange, RiskAction, RiskAlert, RiskMonitor

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
IN_FLIGHT = (OrderStatus.PENDING_NEW, OrderStatus.PENDING_CANCEL)
# Read once for the hot paths: on Python 3.11 reading a member off its enum class
# (`OrderSide.BUY`) takes the slow attribute path of a class with `__getattr__`.
_BUY = OrderSide.BUY
_LIMIT, _MARKET = OrderType.LIMIT, OrderType.MARKET


# action -> (the only mode it leaves, or None for any; the mode it sets)
_ADMIN_MODES: dict[ModeAction, tuple[TradingMode | None, TradingMode]] = {
    ModeAction.MAINTENANCE: (None, TradingMode.MAINTENANCE),
    ModeAction.READY: (TradingMode.MAINTENANCE, TradingMode.ACTIVE),
    ModeAction.READONLY: (None, TradingMode.READONLY),
    ModeAction.READWRITE: (TradingMode.READONLY, TradingMode.ACTIVE),
}

_MODE_DENIALS = frozenset({"trading_disabled", "trading_halted"})
# How a denial reason is answered; every other reason is `risk_rejected`.
_DENIAL_CODES = {
    "trading_disabled": "trading_disabled",
    "trading_halted": "trading_disabled",
    "rate_limited": "rate_limit_exceeded",
}


class CoreConfig(msgspec.Struct, frozen=True, kw_only=True):
    # Final orders kept in memory and in every checkpoint, so the engine shows the same
    # orders before and after a restart; older ones stay in the journal and the store.
    retained_final_orders: int = 5_000
    # ...and at most this many bytes of them (estimated; None: no bound in bytes).
    retained_final_bytes: int | None = None
    risk: RiskConfig = RiskConfig()
    # Time risk decisions for the latency metrics (VELOZ_METRICS).
    record_latency: bool = True
    # Value the portfolio on every quote and fill, for the equity-driven risk actions (drawdown
    # levels, the breaker's loss window) and the VaR samples. A backtest whose limits act on
    # none of them turns it off: it keeps the marks and values the book only on fills, and
    # its statistics come from its own equity curve.
    value_every_quote: bool = True


class TradingCore:
    def __init__(
        self,
        config: CoreConfig,
        clock: Clock,
        instruments: Mapping[str, Instrument],
        sink: EventSink,
        router: OrderRouter,
        *,
        on_alert: Callable[[RiskAlert], None] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.instruments = instruments
        self._sink = sink
        self._router = router
        self._on_alert = on_alert
        self.oms = OrderManager(config.retained_final_orders, config.retained_final_bytes)
        self.portfolio = Portfolio(instruments)
        self.risk = RiskEngine(config.risk, clock.time_ns)
        self.monitor = RiskMonitor(self.risk)
        self.stats = EngineStats()
        self.mode = TradingMode.ACTIVE
        self.mode_reason = ""
        self.balances_seeded = False
        # Risk actions (breaker trips, drawdown) change the mode only once the runtime has
        # finished replaying and reconciling: what they react to before that is history.
        self.acting = False
        self._quotes: dict[str, QuoteTick] = {}
        # The mid of each latest quote (the portfolio's mark), worked out once per quote
        # rather than again by every pre-trade check.
        self._mids: dict[str, Decimal] = {}
        # The newest journaled change of every strategy (what a restart resumes), and each
        # strategy's own position, from the fills of the orders it placed.
        self.strategies: dict[str, StrategyChanged] = {}
        self.strategy_positions: dict[str, Position] = {}
        self._margin_leverage = config.risk.margin_leverage
        self._equity: Decimal | None = None
        self._generated_ids = 0
        self._id_prefix = f"vz-{clock.time_ns() // 1_000_000:x}-"
        # How `apply` changes state for each kind of event.
        self._appliers: dict[type[Event], Callable[[Any], Order | None]] = {
            OrderSubmitted: self._apply_submitted,
            OrderFilled: self._apply_filled,
            OrderAccepted: self._apply_order_event,
            OrderRejected: self._apply_order_event,
            OrderCancelRequested: self._apply_order_event,
            OrderCancelRejected: self._apply_order_event,
            OrderCancelled: self._apply_order_event,
            OrderExpired: self._apply_order_event,
            OrderDenied: self._apply_denied,
            TradingModeChanged: self._apply_mode,
            StrategyChanged: self._apply_strategy,
            BalanceSet: self._apply_balance,
        }

    # -- commands ----------------------------------------------------------------------

    def submit(self, command: SubmitOrder) -> tuple[Order, bool]:
        """Take a new order: validate, decide risk, apply, record, route. Returns the order
        and whether it is new (False: the same request again, answered idempotently).
        Raises CommandRejected, having changed nothing but the journaled denial."""
        event = self._submission(command)
        existing = self.oms.existing_for(event)
        if existing is not None:
            return existing, False
        denial = self.risk_decision(event)
        if denial is not None:
            self._deny(event, denial)
        order = self.apply(event)
        assert order is not None
        try:
            self._sink.emit(event, order)
        except CommandRejected:
            self.undo_submission(order)
            raise
        self._router.send_order(VenueOrder.of(order))
        return order, True

    def undo_submission(self, order: Order) -> None:
        """The submission never became durable: it was not acknowledged and not sent."""
        self.portfolio.on_final(order)
        self.oms.forget(order.client_order_id)

    def cancel(self, command: CancelOrder) -> tuple[Order, bool]:
        """Ask the venue to cancel; the order is PENDING_CANCEL until it answers. A second
        cancel of an order already waiting for one changes nothing. Returns the order and
        whether a cancel request was recorded now (False: one already was)."""
        order = self.oms.get(command.client_order_id)
        if order is None:
            raise CommandRejected(f"no order {command.client_order_id}", code=ErrorCode.NOT_FOUND)
        if command.symbol is not None and command.symbol != order.symbol:
            raise CommandRejected(
                f"order {order.client_order_id} is for {order.symbol}, not {command.symbol}"
            )
        if order.is_final:
            raise CommandRejected(
                f"order {order.client_order_id} is already {order.status}",
                code=ErrorCode.ORDER_FINAL,
            )
        if order.status is OrderStatus.PENDING_CANCEL:
            return order, False
        event = OrderCancelRequested(
            client_order_id=order.client_order_id, ts_ns=self.clock.time_ns()
        )
        self.apply(event)
        try:
            self._sink.emit(event, order)
        except CommandRejected:
            self.refuse_cancel(order.client_order_id, "journal_unavailable")
            raise
        self._router.send_cancel(order.client_order_id, order.symbol)
        return order, True

    def refuse_cancel(self, client_order_id: str, reason: str) -> None:
        """A cancel request that could not be recorded never left: the order works on."""
        self.apply(
            OrderCancelRejected(
                client_order_id=client_order_id, reason=reason, ts_ns=self.clock.time_ns()
            )
        )

    def open_order_ids(self, symbol: str | None = None) -> list[str]:
        return [
            order.client_order_id
            for order in self.oms.open_orders()
            if symbol is None or order.symbol == symbol
        ]

    def admin_mode(self, action: ModeAction, actor: str) -> bool:
        """An operator's mode command; whether it changed the mode.

        `maintenance` and `readonly` always apply. `ready` leaves only MAINTENANCE and
        `readwrite` only READONLY: anything else is left as it is (a HALTED breaker or a
        READONLY set for journal damage is never cleared by the wrong command).
        """
        leaves, target = _ADMIN_MODES[action]
        if self.mode is target or (leaves is not None and self.mode is not leaves):
            return False
        self.set_mode(target, f"{action} by {actor}", actor)
        return True

    def set_mode(self, mode: TradingMode, reason: str, actor: str) -> None:
        if not self._sink.accepting:
            raise CommandRejected(
                "the journal is not accepting entries", code=ErrorCode.JOURNAL_UNAVAILABLE
            )
        event = TradingModeChanged(
            mode=mode, reason=reason, actor=actor, ts_ns=self.clock.time_ns()
        )
        self.apply(event)
        self._sink.emit(event, None)
        logger.warning("trading mode set to %s by %s: %s", mode, actor, reason)

    def reset_breaker(self, actor: str) -> bool:
        """An admin closes the breaker; a HALTED engine trades again. Whether the mode
        changed."""
        self.monitor.reset_breaker()
        if self.mode is not TradingMode.HALTED:
            return False
        self.set_mode(TradingMode.ACTIVE, f"circuit breaker reset by {actor}", actor)
        return True

    def reload_risk_limits(self, actor: str) -> LoadedLimits:
        """Re-read the risk limits file; an invalid one is refused (CommandRejected) and the
        limits in force stay."""
        try:
            loaded = self.risk.reload()
        except RiskLimitsError as exc:
            logger.error("risk limits reload by %s refused: %s", actor, exc)
            raise CommandRejected(str(exc), code=ErrorCode.BAD_LIMITS) from None
        logger.warning(
            "risk limits reloaded by %s from %s (sha256 %s)", actor, loaded.source, loaded.sha256
        )
        return loaded

    def record_strategy(self, change: StrategyChanged) -> None:
        """A strategy's lifecycle moved: applied and recorded, so a restart resumes it."""
        self.apply(change)
        self._sink.emit(change, None)

    def strategy_position(self, strategy_id: str) -> Position | None:
        return self.strategy_positions.get(strategy_id)

    def strategy_open_orders(self, strategy_id: str) -> list[Order]:
        """The strategy's orders that are not final yet."""
        return [o for o in self.oms.open_orders() if o.strategy_id == strategy_id]

    def _strategy_position(self, strategy_id: str, symbol: str) -> Position:
        position = self.strategy_positions.get(strategy_id)
        if position is None:
            position = self.strategy_positions[strategy_id] = Position(symbol=symbol)
        return position

    def seed_balances(self, totals: Mapping[str, Decimal]) -> None:
        """The venue's balances at the very first start."""
        now = self.clock.time_ns()
        for asset, total in sorted(totals.items()):
            event = BalanceSet(asset=asset, total=total, ts_ns=now)
            self.apply(event)
            self._sink.emit(event, None)
        self.balances_seeded = True

    # -- venue and market input --------------------------------------------------------

    def on_report(self, report: OrderReport) -> Order | None:
        """A venue's execution report; None if it contradicts the order (counted, logged,
        not applied) or repeats a fill already applied."""
        try:
            order = self.apply(report)
        except InvalidTransition as exc:
            if exc.code != "duplicate_trade":
                self.stats.invalid_reports += 1
                logger.warning("venue report refused: %s", exc)
            return None
        # Exact types, as `apply` dispatches: isinstance on a Struct class is slow.
        if type(report) is OrderFilled and self.config.value_every_quote:
            self._equity = self.portfolio.update_equity()
        try:
            self._sink.emit(report, order)
        except CommandRejected:
            logger.error(
                "venue report for %s could not be journaled; reconciliation after "
                "a restart will recover it",
                report.client_order_id,
            )
        if type(report) is OrderRejected:
            self._act(self.monitor.on_rejection(report.ts_ns, self.mode))
        return order

    def on_send_error(self, client_order_id: str) -> None:
        """A request could not be handed to the venue."""
        self.stats.rejections["venue_error"] += 1
        self._act(self.monitor.on_venue_error(self.clock.time_ns(), self.mode))

    def on_quote(self, quote: QuoteTick) -> None:
        """The top of the book moved: marks, equity and the risk actions on them."""
        ts_ns, portfolio, monitor = quote.ts_ns, self.portfolio, self.monitor
        symbol = quote.symbol
        self._quotes[symbol] = quote
        mid = self._mids[symbol] = quote.mid
        portfolio.mark(symbol, mid)
        if self.config.value_every_quote:
            # Marks are not journaled, so the equity peak travels in checkpoints.
            equity = self._equity = portfolio.update_equity()
            self.risk.record_equity(ts_ns, equity)
            # Each decision sees the mode the one before it may have changed. They rarely
            # call for an action, so `_act` runs only when there is one.
            if actions := monitor.on_equity(ts_ns, equity, self.mode):
                self._act(actions)
            if actions := monitor.on_drawdown(ts_ns, portfolio.drawdown(equity), self.mode):
                self._act(actions)
        else:
            self._equity = None  # valued again when an order needs it
        if actions := monitor.on_clock(ts_ns, self.mode):
            self._act(actions)

    def quote(self, symbol: str) -> QuoteTick | None:
        return self._quotes.get(symbol)

    # -- risk ----------------------------------------------------------------------------

    def risk_decision(self, event: OrderSubmitted) -> Denial | None:
        """Whether the risk engine lets this order into the book, given the book now."""
        if not self.config.record_latency:
            intent = _intent(event)
            return self.risk.check(intent, self.mode, self._exposure(intent))
        started = time.perf_counter()
        intent = _intent(event)
        denial = self.risk.check(intent, self.mode, self._exposure(intent))
        self.stats.risk_latency.observe(time.perf_counter() - started)
        return denial

    def _exposure(self, order: OrderIntent) -> Exposure:
        symbol = order.symbol
        portfolio = self.portfolio
        open_buy_qty, open_sell_qty, open_orders_symbol, open_orders_total = self.oms.open_exposure(
            symbol
        )
        position_qty = portfolio.position_qty(symbol)
        # Only what the account's check reads is worked out: a cash account is checked
        # against its free balances, a margin account against its equity, and only for an
        # order that can make its position larger.
        free_quote = free_base = equity = ZERO
        if self._margin_leverage is None:
            instrument = self.instruments[symbol]
            free_quote = portfolio.free(instrument.quote_asset)
            free_base = portfolio.free(instrument.base_asset)
        elif needs_margin(order, position_qty, open_buy_qty, open_sell_qty):
            equity = self._current_equity()
        return Exposure(
            position_qty=position_qty,
            open_buy_qty=open_buy_qty,
            open_sell_qty=open_sell_qty,
            open_orders_symbol=open_orders_symbol,
            open_orders_total=open_orders_total,
            mark=self._mids.get(symbol),
            free_quote=free_quote,
            free_base=free_base,
            margin_leverage=self._margin_leverage,
            equity=equity,
        )

    def _current_equity(self) -> Decimal:
        """Equity at the latest marks; kept between a quote or fill and the next change."""
        if self._equity is None:
            self._equity = self.portfolio.equity()
        return self._equity

    def _deny(self, event: OrderSubmitted, denial: Denial) -> None:
        """Refuse an order before it enters the book: journaled and counted by reason, never
        an order."""
        message = denial.message
        if denial.reason in _MODE_DENIALS:
            message = f"{message}: {self.mode_reason or 'set by an operator'}"
        denied = OrderDenied(
            client_order_id=event.client_order_id,
            symbol=event.symbol,
            side=event.side,
            qty=event.qty,
            price=event.price,
            reason=denial.reason,
            message=message,
            ts_ns=event.ts_ns,
        )
        self.apply(denied)
        if self._sink.accepting:
            self._sink.emit(denied, None)
        if denial.reason not in _MODE_DENIALS:
            self._act(self.monitor.on_rejection(event.ts_ns, self.mode))
        code = _DENIAL_CODES.get(denial.reason, "risk_rejected")
        raise CommandRejected(message, code=code, reason=denial.reason)

    def _act(self, actions: list[RiskAction]) -> None:
        for action in actions:
            if isinstance(action, RiskAlert):
                logger.warning("risk %s: %s", action.level, action.message)
                if self._on_alert is not None:
                    self._on_alert(action)
            elif self.acting and self._sink.accepting:
                self._change_mode(action)

    def _change_mode(self, change: ModeChange) -> None:
        if change.mode is TradingMode.HALTED:
            logger.error("%s", change.reason)
        self.set_mode(change.mode, change.reason, "risk")

    # -- the one place state changes -------------------------------------------------------

    def apply(self, event: Event) -> Order | None:
        # Dispatched on the event's exact type: one dict lookup where a chain of class
        # patterns costs an isinstance per kind tried (slow on msgspec's Struct classes),
        # three times per order. A kind not in the table (none today) takes the class
        # patterns.
        applier = self._appliers.get(type(event))
        if applier is not None:
            return applier(event)
        match event:
            case OrderEvent():
                return self._apply_order_event(event)
        return None

    def _apply_submitted(self, event: OrderSubmitted) -> Order:
        order = self.oms.add(event)
        self.portfolio.on_submitted(order)
        self.stats.orders_taken[(event.side, event.order_type)] += 1
        return order

    def _apply_filled(self, event: OrderFilled) -> Order:
        self._equity = None
        order = self.oms.apply(event)
        self.stats.fills_by_side[event.side] += 1
        strategy_id = order.strategy_id
        realized = self.portfolio.on_fill(
            order,
            event,
            None if strategy_id is None else self._strategy_position(strategy_id, event.symbol),
        )
        if realized:
            self._count_closing(realized)
        self._on_order_changed(order)
        return order

    def _apply_order_event(self, event: OrderEvent) -> Order:
        order = self.oms.apply(event)
        self._on_order_changed(order)
        return order

    def _apply_denied(self, event: OrderDenied) -> None:
        # A denial names an order that never existed: counted, not an order event.
        self.stats.rejections[event.reason] += 1

    def _apply_mode(self, event: TradingModeChanged) -> None:
        self.mode, self.mode_reason = event.mode, event.reason

    def _apply_strategy(self, event: StrategyChanged) -> None:
        if event.state is StrategyState.REMOVED:
            self.strategies.pop(event.strategy_id, None)
            self.strategy_positions.pop(event.strategy_id, None)
        else:
            self.strategies[event.strategy_id] = event

    def _apply_balance(self, event: BalanceSet) -> None:
        self._equity = None
        self.portfolio.on_balance_set(event.asset, event.total)
        self.balances_seeded = True

    def _count_closing(self, realized: Decimal) -> None:
        """A fill that realised PnL closed (part of) a position: count it won or lost."""
        if realized:
            self.stats.trades_closed += 1
            self.stats.trades_won += realized > 0

    def _on_order_changed(self, order: Order) -> None:
        if order.is_final:
            self.portfolio.on_final(order)

    # -- checkpoints -------------------------------------------------------------------

    def checkpoint(self) -> EngineCheckpoint:
        return EngineCheckpoint(
            ts_ns=self.clock.time_ns(),
            orders=self.oms.snapshot(),
            portfolio=self.portfolio.snapshot(),
            mode=self.mode,
            mode_reason=self.mode_reason,
            generated_ids=self._generated_ids,
            balances_seeded=self.balances_seeded,
            strategies=list(self.strategies.values()),
            strategy_positions={
                strategy_id: msgspec.structs.replace(position)
                for strategy_id, position in self.strategy_positions.items()
            },
        )

    def restore(self, checkpoint: EngineCheckpoint) -> None:
        self.oms.restore(checkpoint.orders)
        self.portfolio.restore(checkpoint.portfolio)
        self._equity = None
        self.mode, self.mode_reason = checkpoint.mode, checkpoint.mode_reason
        self._generated_ids = checkpoint.generated_ids
        self.balances_seeded = checkpoint.balances_seeded
        self.strategies = {change.strategy_id: change for change in checkpoint.strategies}
        self.strategy_positions = {
            strategy_id: msgspec.structs.replace(position)
            for strategy_id, position in checkpoint.strategy_positions.items()
        }

    # -- internals ---------------------------------------------------------------------

    def _submission(self, command: SubmitOrder) -> OrderSubmitted:
        instrument = self.instruments.get(command.symbol)
        if instrument is None:
            raise CommandRejected(
                f"unknown symbol {command.symbol}; trading {', '.join(sorted(self.instruments))}",
                code=ErrorCode.UNKNOWN_SYMBOL,
            )
        reference = self._reference_price(command)
        command = conform(command, instrument, reference)
        return OrderSubmitted(
            client_order_id=command.client_order_id or self._next_client_order_id(),
            symbol=command.symbol,
            side=command.side,
            order_type=command.order_type,
            time_in_force=command.time_in_force,
            qty=command.qty,
            price=command.price,
            reference_price=reference,
            strategy_id=command.strategy_id,
            ts_ns=self.clock.time_ns(),
        )

    def _reference_price(self, command: SubmitOrder) -> Decimal | None:
        if command.order_type is not _MARKET:
            return None
        quote = self._quotes.get(command.symbol)
        if quote is None:
            raise CommandRejected(
                f"no market data for {command.symbol} yet", code=ErrorCode.NO_MARKET_DATA
            )
        return quote.ask if command.side is _BUY else quote.bid

    def _next_client_order_id(self) -> str:
        self._generated_ids += 1
        return f"{self._id_prefix}{self._generated_ids}"


def _intent(event: OrderSubmitted) -> OrderIntent:
    price = event.price if event.price is not None else event.reference_price
    assert price is not None  # a market order always has its reference price
    return OrderIntent(
        symbol=event.symbol,
        side=event.side,
        qty=event.qty,
        price=price,
        is_limit=event.order_type is _LIMIT,
    )
