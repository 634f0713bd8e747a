"""The trading core without asyncio, on a simulated clock: commands in, events out.

The sink and the router are plain lists; the venue, where one is needed, is the
synchronous simulated exchange. The property test drives random commands, quotes and
venue reports through a core and replays every event it emitted into a fresh core: the
two must hold the same orders, balances and positions (replay rebuilds what trading
built)."""

from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veloz.clock import SimulatedClock
from veloz.engine.core import CoreConfig, TradingCore
from veloz.execution.venue import VenueOrder
from veloz.execution.venues.sim_config import SimVenueConfig
from veloz.execution.venues.sim_exchange import SimExchange
from veloz.model.commands import CancelOrder, SubmitOrder
from veloz.model.enums import (
    ModeAction,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
    TradingMode,
)
from veloz.model.errors import CommandRejected
from veloz.model.events import (
    BalanceSet,
    Event,
    OrderAccepted,
    OrderCancelRequested,
    OrderDenied,
    OrderSubmitted,
    TradingModeChanged,
)
from veloz.model.instruments import default_instrument
from veloz.model.market import QuoteTick
from veloz.model.orders import Order
from veloz.risk.engine import RiskConfig
from veloz.risk.limits import BreakerLimits, LoadedLimits, RiskLimits, SymbolLimits

D = Decimal
INSTRUMENTS = {"BTCUSDT": default_instrument("BTCUSDT", D(50000))}
START = 1_700_000_000_000_000_000


def limits(**breaker: object) -> RiskConfig:
    return RiskConfig(
        limits=LoadedLimits(
            limits=RiskLimits(
                defaults=SymbolLimits(price_band_pct=None),
                breaker=BreakerLimits(**breaker),  # type: ignore[arg-type]
                drawdown_warning_pct=None,
                drawdown_critical_pct=None,
            ),
            source=None,
            loaded_at_ns=0,
            sha256=None,
        )
    )


class ListSink:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.accepting = True
        self.refuse = False

    def emit(self, event: Event, order: Order | None) -> None:
        if self.refuse:
            raise CommandRejected("journal is gone", code="journal_unavailable")
        self.events.append(event)


class ListRouter:
    def __init__(self) -> None:
        self.sent: list[VenueOrder | tuple[str, str]] = []

    def send_order(self, order: VenueOrder) -> None:
        self.sent.append(order)

    def send_cancel(self, client_order_id: str, symbol: str) -> None:
        self.sent.append((client_order_id, symbol))


def make_core(
    risk: RiskConfig | None = None, *, value_every_quote: bool = True
) -> tuple[TradingCore, ListSink, ListRouter]:
    sink, router = ListSink(), ListRouter()
    core = TradingCore(
        CoreConfig(
            risk=risk or limits(), record_latency=False, value_every_quote=value_every_quote
        ),
        SimulatedClock(START),
        INSTRUMENTS,
        sink,
        router,
    )
    core.seed_balances({"USDT": D(100_000), "BTC": D(1)})
    core.acting = True
    return core, sink, router


def mode_of(core: TradingCore) -> TradingMode:
    return core.mode


def quote(bid: str = "50000", ask: str = "50001", ts: int = START) -> QuoteTick:
    return QuoteTick(
        symbol="BTCUSDT", bid=D(bid), ask=D(ask), bid_size=D(5), ask_size=D(5), ts_ns=ts
    )


def buy(qty: str = "0.01", price: str | None = "49000", coid: str | None = None) -> SubmitOrder:
    return SubmitOrder(
        symbol="BTCUSDT",
        side=OrderSide.BUY,
        qty=D(qty),
        price=D(price) if price else None,
        order_type=OrderType.LIMIT if price else OrderType.MARKET,
        time_in_force=TimeInForce.GTC if price else TimeInForce.IOC,
        client_order_id=coid,
    )


def test_submit_emits_then_routes_and_applies() -> None:
    core, sink, router = make_core()
    order, created = core.submit(buy(coid="a1"))
    assert created and order.status is OrderStatus.PENDING_NEW
    assert [type(e) for e in sink.events[-1:]] == [OrderSubmitted]
    assert router.sent == [VenueOrder.of(order)]
    assert core.portfolio.free("USDT") == D(100_000) - D("490")  # 0.01 x 49000 locked


def test_the_same_request_again_emits_nothing() -> None:
    core, sink, router = make_core()
    core.submit(buy(coid="a1"))
    emitted = len(sink.events)
    order, created = core.submit(buy(coid="a1"))
    assert not created and order.client_order_id == "a1"
    assert len(sink.events) == emitted and len(router.sent) == 1
    with pytest.raises(CommandRejected) as refused:
        core.submit(buy(qty="0.02", coid="a1"))
    assert refused.value.code == "duplicate_client_order_id"


def test_a_sink_that_refuses_undoes_the_submission() -> None:
    core, sink, router = make_core()
    sink.refuse = True
    with pytest.raises(CommandRejected) as refused:
        core.submit(buy(coid="a1"))
    assert refused.value.code == "journal_unavailable"
    assert core.oms.get("a1") is None and router.sent == []
    assert core.portfolio.free("USDT") == D(100_000)


def test_market_order_needs_a_quote_and_locks_at_the_touch() -> None:
    core, _, _ = make_core()
    with pytest.raises(CommandRejected) as refused:
        core.submit(buy(price=None))
    assert refused.value.code == "no_market_data"
    core.on_quote(quote())
    order, _ = core.submit(buy(price=None))
    assert order.reference_price == D("50001")


def test_denial_is_emitted_and_changes_nothing_else() -> None:
    core, sink, router = make_core(limits())
    core.on_quote(quote())
    core.admin_mode(ModeAction.READONLY, "ops")
    with pytest.raises(CommandRejected) as refused:
        core.submit(buy(coid="d1"))
    assert refused.value.code == "trading_disabled"
    assert isinstance(sink.events[-1], OrderDenied)
    assert core.oms.get("d1") is None and router.sent == []


def test_breaker_trips_halts_and_cools_down_on_the_clock() -> None:
    core, sink, _ = make_core(limits(max_rejections=1, window_s=60, cooldown_s=30))
    core.on_quote(quote())
    for n in range(2):  # over the free balance: refused by risk, counted by the breaker
        with pytest.raises(CommandRejected):
            core.submit(buy(qty="100", coid=f"x{n}"))
    assert core.mode is TradingMode.HALTED
    assert isinstance(sink.events[-1], TradingModeChanged)
    core.on_quote(quote(ts=START + 29 * 10**9))
    assert core.mode is TradingMode.HALTED
    core.on_quote(quote(ts=START + 31 * 10**9))
    assert mode_of(core) is TradingMode.ACTIVE
    assert sink.events[-1] == TradingModeChanged(
        mode=TradingMode.ACTIVE,
        reason="circuit breaker cooled down",
        actor="risk",
        ts_ns=START,  # the simulated clock was not moved: quotes carry their own time
    )


def test_without_valuing_every_quote_marks_move_but_equity_is_valued_on_demand() -> None:
    core, _, _ = make_core(limits(max_rejections=0, window_s=60, cooldown_s=1),
                           value_every_quote=False)  # fmt: skip
    core.on_quote(quote())
    assert core.risk.equity_sample_count == 0  # nothing valued the book on the quote
    core.on_quote(quote(bid="60000", ask="60000", ts=START + 10**9))
    # The mark moved all the same: 1 BTC at 60,000 plus the cash.
    assert core.portfolio.equity() == D(160_000)
    # The breaker's clock still runs on quotes: a trip cools down.
    with pytest.raises(CommandRejected):
        core.submit(buy(qty="100"))
    assert core.mode is TradingMode.HALTED
    core.on_quote(quote(ts=START + 5 * 10**9))
    assert mode_of(core) is TradingMode.ACTIVE


def test_cool_down_does_not_lift_a_mode_an_operator_set() -> None:
    core, _, _ = make_core(limits(max_rejections=0, window_s=60, cooldown_s=1))
    core.on_quote(quote())
    with pytest.raises(CommandRejected):
        core.submit(buy(qty="100"))
    core.admin_mode(ModeAction.READONLY, "ops")
    core.on_quote(quote(ts=START + 5 * 10**9))
    assert core.mode is TradingMode.READONLY


def test_risk_actions_wait_until_the_runtime_says_it_is_live() -> None:
    core, _, _ = make_core(limits(max_rejections=0, window_s=60, cooldown_s=1))
    core.acting = False  # replaying / reconciling
    core.on_quote(quote())
    with pytest.raises(CommandRejected):
        core.submit(buy(qty="100"))
    assert core.mode is TradingMode.ACTIVE


def test_cancel_requests_once_and_refuses_final_or_unknown() -> None:
    core, sink, router = make_core()
    core.submit(buy(coid="c1"))
    core.on_report(OrderAccepted(client_order_id="c1", venue_order_id="v1", ts_ns=START))
    _, requested = core.cancel(CancelOrder(client_order_id="c1"))
    assert requested and isinstance(sink.events[-1], OrderCancelRequested)
    assert router.sent[-1] == ("c1", "BTCUSDT")
    emitted = len(sink.events)
    _, requested = core.cancel(CancelOrder(client_order_id="c1"))  # already waiting
    assert not requested and len(sink.events) == emitted
    with pytest.raises(CommandRejected) as refused:
        core.cancel(CancelOrder(client_order_id="nope"))
    assert refused.value.code == "not_found"


def test_admin_modes() -> None:
    core, _, _ = make_core()
    assert not core.admin_mode(ModeAction.READY, "ops")  # ACTIVE: ready leaves only MAINTENANCE
    assert core.admin_mode(ModeAction.MAINTENANCE, "ops")
    assert not core.admin_mode(ModeAction.READWRITE, "ops")  # leaves only READONLY
    assert core.admin_mode(ModeAction.READY, "ops")
    assert core.mode is TradingMode.ACTIVE


# -- replay rebuilds what trading built --------------------------------------------------

_actions = st.lists(
    st.one_of(
        st.tuples(
            st.just("limit"),
            st.sampled_from(OrderSide),
            st.integers(1, 50),
            st.integers(-30, 30),
        ),
        st.tuples(st.just("market"), st.sampled_from(OrderSide), st.integers(1, 50)),
        st.tuples(st.just("cancel"), st.integers(0, 40)),
        st.tuples(st.just("quote"), st.integers(-40, 40)),
    ),
    max_size=60,
)


def state(core: TradingCore) -> object:
    orders = sorted(msgspec.to_builtins(core.oms.all_orders()), key=lambda o: o["client_order_id"])
    portfolio = msgspec.to_builtins(core.portfolio.snapshot())
    del portfolio["peak_equity"]  # marks are not journaled
    return orders, portfolio, core.mode


@settings(max_examples=60, deadline=None)
@given(_actions)
def test_replaying_the_emitted_events_rebuilds_the_same_state(
    actions: list[tuple[Any, ...]],
) -> None:
    clock = SimulatedClock(START)
    sink = ListSink()
    mid = D(50000)
    marks: dict[str, QuoteTick] = {}
    exchange = SimExchange(
        SimVenueConfig(latency_ms=0, starting_balances={"USDT": D(100_000), "BTC": D(2)}),
        clock,
        INSTRUMENTS,
        marks.get,
        id_seed=1,
    )

    class Router:
        def send_order(self, order: VenueOrder) -> None:
            exchange.submit(order)

        def send_cancel(self, client_order_id: str, symbol: str) -> None:
            exchange.cancel(client_order_id, symbol)

    core = TradingCore(
        CoreConfig(risk=limits(), record_latency=False), clock, INSTRUMENTS, sink, Router()
    )
    core.seed_balances(exchange.balances())
    core.acting = True
    placed: list[str] = []

    def settle() -> None:
        while reports := exchange.drain():
            for report in reports:
                core.on_report(report)

    for action in actions:
        clock.advance(10**9)
        try:
            if action[0] == "limit":
                _, side, size, offset = action
                price = mid + offset * 10
                order, _ = core.submit(
                    SubmitOrder(symbol="BTCUSDT", side=side, qty=D(size) / 1000, price=price)
                )
                placed.append(order.client_order_id)
            elif action[0] == "market":
                _, side, size = action
                core.submit(
                    SubmitOrder(
                        symbol="BTCUSDT",
                        side=side,
                        qty=D(size) / 1000,
                        order_type=OrderType.MARKET,
                        time_in_force=TimeInForce.IOC,
                    )
                )
            elif action[0] == "cancel" and placed:
                core.cancel(CancelOrder(client_order_id=placed[action[1] % len(placed)]))
            elif action[0] == "quote":
                mid += action[1] * 10
                tick = QuoteTick(
                    symbol="BTCUSDT",
                    bid=mid,
                    ask=mid + 1,
                    bid_size=D("0.02"),
                    ask_size=D("0.02"),
                    ts_ns=clock.time_ns(),
                )
                marks["BTCUSDT"] = tick
                core.on_quote(tick)
                exchange.on_quote(tick)
        except CommandRejected:
            pass
        settle()
        for balance in core.portfolio.balances():
            assert balance.locked >= 0

    replayed = TradingCore(
        CoreConfig(risk=limits(), record_latency=False),
        clock,
        INSTRUMENTS,
        ListSink(),
        ListRouter(),
    )
    for event in sink.events:
        replayed.apply(event)
    assert state(replayed) == state(core)
    assert isinstance(sink.events[0], BalanceSet)
