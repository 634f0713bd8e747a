"""The MarketDataEngine: quote cache, bars, feed status, fan-out isolation and the source
lifecycle."""

import asyncio
import logging
from collections.abc import Callable
from decimal import Decimal

import pytest

from veloz.clock import LiveClock, SimulatedClock
from veloz.market.engine import FeedStatus, MarketDataConfig, MarketDataEngine
from veloz.market.sim import SimMarketConfig, SimMarketSource
from veloz.model.enums import OrderSide
from veloz.model.market import Bar, QuoteTick, TradeTick

MS = 1_000_000
MINUTE_NS = 60_000 * MS
T0 = 1_700_000_040 * 1_000_000_000


def quote(ts_ns: int, symbol: str = "BTCUSDT", bid: str = "100.00") -> QuoteTick:
    return QuoteTick(
        symbol=symbol,
        bid=Decimal(bid),
        ask=Decimal(bid) + Decimal("0.01"),
        bid_size=Decimal("1"),
        ask_size=Decimal("1"),
        ts_ns=ts_ns,
    )


def trade(ts_ns: int, price: str, trade_id: str) -> TradeTick:
    return TradeTick(
        symbol="BTCUSDT",
        trade_id=trade_id,
        price=Decimal(price),
        size=Decimal("1"),
        aggressor=OrderSide.SELL,
        ts_ns=ts_ns,
    )


def test_latest_quote_per_symbol_is_cached() -> None:
    engine = MarketDataEngine()
    engine.on_data(quote(T0, "BTCUSDT", "100.00"))
    engine.on_data(quote(T0 + MS, "ETHUSDT", "5.00"))
    engine.on_data(quote(T0 + 2 * MS, "BTCUSDT", "101.00"))
    btc = engine.quote("BTCUSDT")
    assert btc is not None and btc.bid == Decimal("101.00")
    assert engine.quote("SOLUSDT") is None
    assert engine.symbols() == ["BTCUSDT", "ETHUSDT"]


def test_status_goes_ok_then_stale_then_ok_again() -> None:
    clock = SimulatedClock(T0)
    engine = MarketDataEngine(MarketDataConfig(stale_after_ms=5000))
    assert engine.status("BTCUSDT", clock.time_ns()) == "disconnected"
    assert engine.age_ns("BTCUSDT", clock.time_ns()) is None

    engine.on_data(quote(clock.time_ns()))
    assert engine.status("BTCUSDT", clock.time_ns()) == FeedStatus.OK

    clock.advance(5000 * MS)
    assert engine.age_ns("BTCUSDT", clock.time_ns()) == 5000 * MS
    assert engine.status("BTCUSDT", clock.time_ns()) == "ok"

    clock.advance(1)
    assert engine.status("BTCUSDT", clock.time_ns()) == "stale"

    engine.on_data(quote(clock.time_ns()))
    assert engine.status("BTCUSDT", clock.time_ns()) == "ok"
    assert engine.status("ETHUSDT", clock.time_ns()) == "disconnected"


def test_age_is_never_negative() -> None:
    engine = MarketDataEngine()
    engine.on_data(quote(T0 + 3 * MS))
    assert engine.age_ns("BTCUSDT", T0) == 0


def test_subscribers_get_quotes_trades_and_closed_bars_in_order() -> None:
    engine = MarketDataEngine()
    received: list[QuoteTick | TradeTick | Bar] = []
    engine.subscribe(received.append)
    first_quote = quote(T0)
    first = trade(T0 + MS, "100.00", "a")
    second = trade(T0 + 2 * MS, "103.00", "b")
    next_minute = trade(T0 + MINUTE_NS, "99.00", "c")
    for item in (first_quote, first, second, next_minute):
        engine.on_data(item)
    closed = Bar(
        symbol="BTCUSDT",
        interval="1m",
        ts_ns=T0,
        open=Decimal("100.00"),
        high=Decimal("103.00"),
        low=Decimal("100.00"),
        close=Decimal("103.00"),
        volume=Decimal("2"),
        closed=True,
    )
    assert received == [first_quote, first, second, closed, next_minute]
    assert engine.bars("BTCUSDT", 1)[0].ts_ns == T0 + MINUTE_NS
    assert engine.bars("BTCUSDT", 5)[0] == closed


def test_a_raising_handler_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    engine = MarketDataEngine()
    before: list[object] = []
    after: list[object] = []

    def broken(_: object) -> None:
        raise RuntimeError("boom")

    engine.subscribe(before.append)
    engine.subscribe(broken)
    engine.subscribe(after.append)
    with caplog.at_level(logging.ERROR, logger="veloz.market.engine"):
        engine.on_data(quote(T0))
        engine.on_data(quote(T0 + MS))
    assert len(before) == 2 and len(after) == 2
    failures = [r for r in caplog.records if "handler" in r.getMessage()]
    assert len(failures) == 2
    assert all(r.exc_info and r.exc_info[0] is RuntimeError for r in failures)


def test_unsubscribe_stops_delivery_and_is_idempotent() -> None:
    engine = MarketDataEngine()
    kept: list[object] = []
    dropped: list[object] = []
    engine.subscribe(kept.append)
    unsubscribe = engine.subscribe(dropped.append)
    engine.on_data(quote(T0))
    unsubscribe()
    unsubscribe()
    engine.on_data(quote(T0 + MS))
    assert len(kept) == 2 and len(dropped) == 1


def test_a_handler_may_unsubscribe_while_being_called() -> None:
    engine = MarketDataEngine()
    calls: list[str] = []
    unsubscribers: list[Callable[[], None]] = []

    def once(_: object) -> None:
        calls.append("once")
        unsubscribers[0]()

    unsubscribers.append(engine.subscribe(once))
    engine.subscribe(lambda _: calls.append("always"))
    engine.on_data(quote(T0))
    engine.on_data(quote(T0 + MS))
    assert calls == ["once", "always", "always"]


def test_invalid_config_is_rejected() -> None:
    with pytest.raises(ValueError):
        MarketDataConfig(stale_after_ms=0)
    with pytest.raises(ValueError):
        MarketDataConfig(bar_history=0)


async def test_start_runs_the_source_and_stop_disconnects() -> None:
    clock = LiveClock()
    engine = MarketDataEngine()
    source = SimMarketSource(
        SimMarketConfig(symbols=("BTCUSDT", "ETHUSDT"), seed=11, tick_interval_ms=10), clock
    )
    received: list[object] = []
    engine.subscribe(received.append)
    await engine.start(source)
    assert engine.running
    with pytest.raises(RuntimeError):
        await engine.start(source)
    await asyncio.sleep(0.05)
    assert engine.status("BTCUSDT", clock.time_ns()) == "ok"
    assert engine.symbols() == ["BTCUSDT", "ETHUSDT"]
    assert engine.quote("ETHUSDT") == source.last_quote("ETHUSDT")

    await engine.stop()
    assert not engine.running
    count = len(received)
    await asyncio.sleep(0.03)
    assert len(received) == count > 0
    assert engine.status("BTCUSDT", clock.time_ns()) == "disconnected"
    await engine.stop()


class CrashingSource:
    async def run(self, publish: Callable[[QuoteTick | TradeTick], None], _: asyncio.Event) -> None:
        publish(quote(LiveClock().time_ns()))
        raise ConnectionError("venue went away")


async def test_a_crashed_source_reads_disconnected_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = MarketDataEngine()
    with caplog.at_level(logging.ERROR, logger="veloz.market.engine"):
        await engine.start(CrashingSource())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    assert not engine.running
    assert engine.status("BTCUSDT", LiveClock().time_ns()) == "disconnected"
    assert any(r.exc_info and r.exc_info[0] is ConnectionError for r in caplog.records)
    await engine.stop()
    await engine.start(SimMarketSource(SimMarketConfig(seed=1), LiveClock()))
    await asyncio.sleep(0.01)
    assert engine.status("BTCUSDT", LiveClock().time_ns()) == "ok"
    await engine.stop()


def test_a_source_bar_for_a_minute_already_published_is_not_published_again() -> None:
    engine = MarketDataEngine()
    seen: list[Bar] = []
    engine.subscribe(lambda item: seen.append(item) if isinstance(item, Bar) else None)
    kline = Bar(
        symbol="BTCUSDT",
        interval="1m",
        ts_ns=60_000_000_000,
        open=Decimal(1),
        high=Decimal(2),
        low=Decimal(1),
        close=Decimal(2),
        volume=Decimal(3),
        closed=True,
    )
    engine.on_data(kline)
    engine.on_data(kline)  # a gap fill that overlapped what the stream had delivered
    assert seen == [kline] and engine.bars("BTCUSDT") == [kline]
