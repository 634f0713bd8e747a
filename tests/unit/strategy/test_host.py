"""The strategy host on a fake order port: lifecycle, routing of order events by
strategy id, positions from fills, refusals counted, and a raising strategy stopped alone
with its orders cancelled."""

from decimal import Decimal

import pytest

from veloz.model.commands import CancelOrder, SubmitOrder
from veloz.model.enums import LiquiditySide, OrderSide, OrderType, StrategyState, TimeInForce
from veloz.model.errors import CommandRejected
from veloz.model.events import OrderAccepted, OrderEvent, OrderFilled, OrderSubmitted
from veloz.model.instruments import default_instrument
from veloz.model.market import PriceBar
from veloz.model.orders import Order
from veloz.portfolio.positions import Position
from veloz.strategy.base import Strategy
from veloz.strategy.host import StrategyHost, StrategySpec

D = Decimal
INSTRUMENTS = {"BTCUSDT": default_instrument("BTCUSDT", D(50000))}


class FakePort:
    """Takes every order (PENDING_NEW) unless told to refuse; records cancels."""

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.cancels: list[str] = []
        self.refuse = False
        self.positions: dict[str, Position] = {}

    def submit(self, command: SubmitOrder) -> Order:
        if self.refuse:
            raise CommandRejected("no", code="risk_rejected")
        coid = f"o{len(self.orders) + 1}"
        order = Order.from_submitted(
            OrderSubmitted(
                client_order_id=coid,
                symbol=command.symbol,
                side=command.side,
                order_type=command.order_type,
                time_in_force=command.time_in_force,
                qty=command.qty,
                price=command.price,
                strategy_id=command.strategy_id,
                ts_ns=1,
            )
        )
        self.orders[coid] = order
        return order

    def cancel(self, command: CancelOrder) -> None:
        self.cancels.append(command.client_order_id)

    def order(self, client_order_id: str) -> Order | None:
        return self.orders.get(client_order_id)

    def open_orders(self, strategy_id: str) -> list[Order]:
        return [o for o in self.orders.values() if o.strategy_id == strategy_id and not o.is_final]

    def strategy_position(self, strategy_id: str) -> Position | None:
        return self.positions.get(strategy_id)


class Recorder(Strategy):
    name = "recorder"

    def on_start(self) -> None:
        self.seen: list[str] = ["start"]

    def on_bar(self, bar: PriceBar) -> None:
        self.seen.append(f"bar {bar.close}")
        if bar.close == 2.0:
            self.ctx.submit_limit(OrderSide.BUY, D("0.01"), D("49000"))
        if bar.close == 3.0:
            self.ctx.buy_market(D("0.02"))

    def on_fill(self, fill: OrderFilled) -> None:
        self.seen.append(f"fill {fill.qty}")

    def on_order_update(self, order: Order) -> None:
        self.seen.append(f"update {order.status}")

    def on_stop(self) -> None:
        self.seen.append("stop")


class Exploder(Strategy):
    name = "exploder"

    def on_bar(self, bar: PriceBar) -> None:
        self.ctx.submit_limit(OrderSide.SELL, D("0.01"), D("51000"))
        if bar.close == 2.0:
            raise RuntimeError("boom")


def bar(close: float, ts: int = 1) -> PriceBar:
    return PriceBar(
        symbol="BTCUSDT", ts_ns=ts, open=close, high=close, low=close, close=close, volume=1.0
    )


def host_with(
    monkeypatch: pytest.MonkeyPatch, *classes: type[Strategy]
) -> tuple[StrategyHost, FakePort]:
    by_id = {f"s{i}": cls for i, cls in enumerate(classes)}
    monkeypatch.setattr(
        "veloz.strategy.host.strategy_class",
        lambda name, path: by_id[name],
    )
    port = FakePort()
    host = StrategyHost(port, INSTRUMENTS, lambda: 7)
    for strategy_id in by_id:
        host.add(
            StrategySpec(strategy_id=strategy_id, name=strategy_id, symbol="BTCUSDT", params={})
        )
        host.start(strategy_id)
    return host, port


def deliver(host: StrategyHost, event: OrderEvent, order: Order) -> None:
    order.apply(event)
    host.on_order_event(event, order)


def fill_of(order: Order, qty: str, trade_id: str) -> OrderFilled:
    return OrderFilled(
        client_order_id=order.client_order_id,
        trade_id=trade_id,
        qty=D(qty),
        price=D("50000"),
        fee=D(0),
        fee_asset="USDT",
        liquidity=LiquiditySide.TAKER,
        symbol=order.symbol,
        side=order.side,
        ts_ns=2,
    )


def test_orders_carry_the_strategy_id_and_events_come_back_to_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, port = host_with(monkeypatch, Recorder)
    running = host.get("s0")
    host.on_bar(bar(2.0))
    host.on_bar(bar(3.0))
    limit, market = port.orders["o1"], port.orders["o2"]
    assert (limit.strategy_id, limit.order_type) == ("s0", OrderType.LIMIT)
    assert (market.order_type, market.time_in_force) == (OrderType.MARKET, TimeInForce.IOC)
    deliver(host, OrderAccepted(client_order_id="o2", venue_order_id="v", ts_ns=2), market)
    deliver(host, fill_of(market, "0.02", "t1"), market)
    recorder = running.strategy
    assert isinstance(recorder, Recorder)
    assert recorder.seen[-3:] == ["update ACCEPTED", "fill 0.02", "update FILLED"]
    assert running.counts.orders == 2 and running.counts.fills == 1
    assert [o.client_order_id for o in host.open_orders(running)] == ["o1"]
    port.positions["s0"] = Position(symbol="BTCUSDT", qty=D("0.02"))
    assert running.strategy.ctx.position() == D("0.02")  # the core's, through the port


def test_events_of_other_strategies_or_people_are_not_delivered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, port = host_with(monkeypatch, Recorder)
    stranger = port.submit(
        SubmitOrder(symbol="BTCUSDT", side=OrderSide.BUY, qty=D("1"), price=D("1"))
    )
    before = list(host.get("s0").strategy.seen)  # type: ignore[attr-defined]
    deliver(host, fill_of(stranger, "1", "t9"), stranger)
    assert host.get("s0").strategy.seen == before  # type: ignore[attr-defined]
    assert host.get("s0").counts.fills == 0


def test_a_raising_strategy_stops_alone_and_its_orders_are_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, port = host_with(monkeypatch, Exploder, Recorder)
    host.on_bar(bar(1.0))
    host.on_bar(bar(2.0))  # Exploder places its second order, then raises
    exploder, recorder = host.get("s0"), host.get("s1")
    assert exploder.state is StrategyState.STOPPED
    assert exploder.error == "RuntimeError in on_bar: boom"
    assert exploder.counts.errors == 1
    assert sorted(port.cancels) == ["o1", "o2"]  # both of its orders, none of the other's
    assert recorder.state is StrategyState.RUNNING
    host.on_bar(bar(5.0))
    assert recorder.strategy.seen[-1] == "bar 5.0"  # type: ignore[attr-defined]
    assert len([o for o in port.orders.values() if o.strategy_id == "s0"]) == 2


def test_refused_orders_are_counted_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    host, port = host_with(monkeypatch, Recorder)
    port.refuse = True
    host.on_bar(bar(3.0))
    running = host.get("s0")
    assert running.state is StrategyState.RUNNING
    assert (running.counts.orders, running.counts.denied) == (0, 1)


def test_lifecycle(monkeypatch: pytest.MonkeyPatch) -> None:
    host, _ = host_with(monkeypatch, Recorder)
    running = host.get("s0")
    host.pause("s0")
    host.on_bar(bar(9.0))
    assert "bar 9.0" not in running.strategy.seen  # type: ignore[attr-defined]
    with pytest.raises(CommandRejected, match="not running"):
        host.pause("s0")
    host.resume("s0")
    host.on_bar(bar(9.0))
    assert running.strategy.seen[-1] == "bar 9.0"  # type: ignore[attr-defined]
    assert running.strategy.seen.count("start") == 1  # type: ignore[attr-defined]
    host.stop("s0")
    assert running.strategy.seen[-1] == "stop"  # type: ignore[attr-defined]
    with pytest.raises(CommandRejected, match="stopped"):
        host.start("s0")
    with pytest.raises(CommandRejected, match="no strategy nope"):
        host.stop("nope")


def test_bad_specs_add_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    host, _ = host_with(monkeypatch, Recorder)
    with pytest.raises(CommandRejected, match="already used"):
        host.add(StrategySpec(strategy_id="s0", name="s0", symbol="BTCUSDT", params={}))
    with pytest.raises(CommandRejected, match="unknown symbol DOGEUSDT"):
        host.add(StrategySpec(strategy_id="s9", name="s0", symbol="DOGEUSDT", params={}))
    assert [r.strategy_id for r in host.all()] == ["s0"]
    assert host.open_orders(host.get("s0")) == []


def test_every_change_is_reported_and_a_restore_runs_again_without_reporting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, _ = host_with(monkeypatch, Recorder)
    changes: list[tuple[str, str, str]] = []
    host.on_state_change = lambda r: changes.append((r.strategy_id, r.state, r.changed_by))
    host.pause("s0", actor="ana")
    host.resume("s0", actor="ana")
    host.remove("s0", actor="bob")
    assert changes == [
        ("s0", StrategyState.PAUSED, "ana"),
        ("s0", StrategyState.RUNNING, "ana"),
        ("s0", StrategyState.STOPPED, "bob"),
        ("s0", StrategyState.REMOVED, "bob"),
    ]
    changes.clear()
    spec = StrategySpec(strategy_id="s0", name="s0", symbol="BTCUSDT", params={})
    host.restore(spec, StrategyState.RUNNING)
    restored = host.get("s0")
    assert restored.state is StrategyState.RUNNING and changes == []
    assert restored.strategy.seen == ["start"]  # type: ignore[attr-defined]
    host.on_bar(bar(4.0))
    assert restored.strategy.seen[-1] == "bar 4.0"  # type: ignore[attr-defined]
    change = restored.change(99)
    assert (change.strategy_id, change.state, change.symbol, change.ts_ns) == (
        "s0",
        StrategyState.RUNNING,
        "BTCUSDT",
        99,
    )


class Ticker(Strategy):
    name = "ticker"

    def on_start(self) -> None:
        self.ticks: list[int] = []
        self.ctx.set_timer(10)

    def on_timer(self, ts_ns: int) -> None:
        self.ticks.append(ts_ns)


class Flooder(Strategy):
    name = "flooder"

    def on_bar(self, bar: PriceBar) -> None:
        for _ in range(300):
            self.ctx.submit_limit(OrderSide.BUY, D("0.01"), D("40000"))


def test_timers_fire_on_market_time_and_stop_with_the_strategy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100]
    monkeypatch.setattr("veloz.strategy.host.strategy_class", lambda name, path: Ticker)
    host = StrategyHost(FakePort(), INSTRUMENTS, lambda: now[0])
    host.add(StrategySpec(strategy_id="t", name="t", symbol="BTCUSDT", params={}))
    host.start("t")
    ticker = host.get("t").strategy
    assert isinstance(ticker, Ticker)
    for now[0] in (105, 110, 111, 135, 144, 145):
        host.on_clock(now[0])
    # Due at 110, then 120 (fires late at 135, once), then 145.
    assert ticker.ticks == [110, 135, 145]
    host.stop("t")
    host.on_clock(1_000)
    assert ticker.ticks == [110, 135, 145]


def test_a_strategy_flooding_orders_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    host, port = host_with(monkeypatch, Flooder)
    host.on_bar(bar(1.0))
    flooder = host.get("s0")
    assert flooder.state is StrategyState.STOPPED
    assert flooder.error == "flooded: more than 250 orders/s"
    assert len(port.orders) == 250  # the burst it was allowed, then nothing more
    assert sorted(port.cancels) == sorted(port.orders)  # and those are cancelled
