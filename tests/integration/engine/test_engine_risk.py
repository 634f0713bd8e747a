"""Pre-trade risk through the engine: limits from a real limits file, concurrent submits
that must not race past them, denials journaled and counted, the order-rate limit."""

import asyncio
from decimal import Decimal

import pytest

from tests.support.engine import engine_config, quote, wait_for
from veloz.engine.views.streams import stream_events
from veloz.journal.framing import EntryType
from veloz.journal.verify import iterate_records
from veloz.model.commands import CancelOrder, SubmitOrder
from veloz.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce, TradingMode
from veloz.model.errors import CommandRejected
from veloz.risk.engine import RiskConfig
from veloz.risk.limits import LoadedLimits, parse_limits
from veloz.risk.monitor import RiskAlert
from veloz.runtime.live import LiveEngine

D = Decimal
LIMITS = """\
defaults:
  price_band_pct: 5
  max_position_qty: 1
  max_open_orders: 50
symbols:
  ETHUSDT:
    max_qty: 2
"""


def risk(text: str = LIMITS, rate: float | None = None) -> RiskConfig:
    loaded = LoadedLimits(limits=parse_limits(text), source="test", loaded_at_ns=0, sha256=None)
    return RiskConfig(order_rate_limit=rate, limits=loaded)


async def started(wal_dir, config: RiskConfig) -> LiveEngine:
    engine = LiveEngine(engine_config(wal_dir, risk=config))
    await engine.start()
    engine.market.on_data(quote(bid="50000", ask="50001"))
    engine.market.on_data(quote("ETHUSDT", "3000", "3000.5", "50"))
    return engine


def buy(qty: str, price: str = "49900", coid: str | None = None, symbol: str = "BTCUSDT"):
    return SubmitOrder(
        symbol=symbol, side=OrderSide.BUY, qty=D(qty), price=D(price), client_order_id=coid
    )


async def test_concurrent_submits_cannot_race_past_the_position_limit(wal_dir):
    engine = await started(wal_dir, risk())
    try:
        results = await asyncio.gather(
            *(engine.submit(buy("0.1", coid=f"c{i}")) for i in range(25)),
            return_exceptions=True,
        )
        accepted = [r for r in results if not isinstance(r, BaseException)]
        denied = [r for r in results if isinstance(r, CommandRejected)]
        assert len(accepted) == 10 and len(denied) == 15  # 10 x 0.1 = the 1 BTC limit
        assert {d.reason for d in denied} == {"max_position_exceeded"}
        assert engine.oms.open_qty("BTCUSDT", OrderSide.BUY) == D(1)
    finally:
        await engine.stop()


async def test_denials_are_journaled_counted_and_change_no_book(wal_dir):
    engine = await started(wal_dir, risk())
    try:
        with pytest.raises(CommandRejected) as band:
            await engine.submit(buy("0.1", price="40000"))
        assert (band.value.code, band.value.reason) == ("risk_rejected", "price_out_of_band")
        with pytest.raises(CommandRejected) as size:
            await engine.submit(buy("3", price="3000", symbol="ETHUSDT"))
        assert size.value.reason == "qty_above_maximum"  # the per-symbol override
        assert len(engine.oms) == 0 and engine.oms.open_count() == 0
        assert engine.stats.rejections == {"price_out_of_band": 1, "qty_above_maximum": 1}
        await engine.journal.sync()  # type: ignore[union-attr]
        denied = [r for _, r in iterate_records(wal_dir) if r.entry_type == EntryType.OrderDenied]
        assert len(denied) == 2 and b"price_out_of_band" in denied[0].payload
    finally:
        await engine.stop()


async def test_the_order_rate_is_held_to_its_limit(wal_dir):
    engine = await started(wal_dir, risk("defaults: {}", rate=5))
    try:
        results = await asyncio.gather(
            *(engine.submit(buy("0.001", coid=f"r{i}")) for i in range(8)),
            return_exceptions=True,
        )
        limited = [r for r in results if isinstance(r, CommandRejected)]
        assert len(limited) == 3
        assert {(r.code, r.reason) for r in limited} == {("rate_limit_exceeded", "rate_limited")}
    finally:
        await engine.stop()


BREAKER = """\
defaults:
  price_band_pct: 5
breaker:
  max_rejections: 3
  window_s: 60
  max_loss: 1000
  loss_window_s: 60
  cooldown_s: {cooldown}
"""


async def halted(engine: LiveEngine) -> None:
    await wait_for(lambda: engine.mode is TradingMode.HALTED, engine)


async def test_too_many_rejections_halt_trading_until_an_admin_resets(wal_dir):
    engine = await started(wal_dir, risk(BREAKER.format(cooldown=600)))
    try:
        for i in range(4):  # 4 denials > 3 allowed within the window
            with pytest.raises(CommandRejected):
                await engine.submit(buy("0.01", price="30000", coid=f"far-{i}"))
        await halted(engine)
        assert engine.breaker.tripped and "4 rejections" in engine.breaker.reason
        with pytest.raises(CommandRejected) as stopped:
            await engine.submit(buy("0.01", coid="near"))
        assert (stopped.value.code, stopped.value.reason) == ("trading_disabled", "trading_halted")
        assert await engine.reset_breaker("test") is TradingMode.ACTIVE
        assert (await engine.submit(buy("0.01", coid="near"))).created
    finally:
        await engine.stop()


async def test_a_loss_over_the_limit_halts_and_the_cool_down_lifts_it(wal_dir):
    engine = await started(wal_dir, risk(BREAKER.format(cooldown="0.05")))
    try:
        await engine.submit(
            SubmitOrder(
                symbol="BTCUSDT",
                side=OrderSide.BUY,
                qty=D("1"),
                order_type=OrderType.MARKET,
                time_in_force=TimeInForce.IOC,
                client_order_id="m",
            )
        )
        await wait_for(lambda: engine.portfolio.position_qty("BTCUSDT") > 0, engine)
        engine.market.on_data(quote(bid="48000", ask="48001"))  # about 2,000 lost
        await halted(engine)
        assert "equity fell" in engine.breaker.reason
        await asyncio.sleep(0.06)  # the cool-down is wall time by design
        engine.market.on_data(quote(bid="48000", ask="48001"))
        await wait_for(lambda: engine.mode is TradingMode.ACTIVE, engine)
        assert not engine.breaker.tripped and engine.breaker.trips == 1
    finally:
        await engine.stop()


async def test_drawdown_warns_then_turns_readonly_and_cancels_still_work(wal_dir):
    limits = "defaults: {}\ndrawdown_warning_pct: 5\ndrawdown_critical_pct: 15\n"
    engine = await started(wal_dir, risk(limits))
    alerts: list[RiskAlert] = []
    engine.bus.subscribe(lambda m: alerts.append(m) if isinstance(m, RiskAlert) else None)
    try:
        await engine.submit(
            SubmitOrder(
                symbol="BTCUSDT",
                side=OrderSide.BUY,
                qty=D("1"),
                order_type=OrderType.MARKET,
                time_in_force=TimeInForce.IOC,
                client_order_id="m",
            )
        )
        await wait_for(lambda: engine.portfolio.position_qty("BTCUSDT") > 0, engine)
        resting = await engine.submit(
            SubmitOrder(  # above every bid below: it stays open
                symbol="BTCUSDT",
                side=OrderSide.SELL,
                qty=D("0.01"),
                price=D("60000"),
                client_order_id="rest",
            )
        )
        engine.market.on_data(quote(bid="44000", ask="44001"))  # about 6 % down
        assert [a.level for a in alerts] == ["warning"] and engine.mode is TradingMode.ACTIVE
        engine.market.on_data(quote(bid="43500", ask="43501"))  # still warned: no repeat
        assert len(alerts) == 1
        engine.market.on_data(quote(bid="30000", ask="30001"))  # about 20 % down
        await wait_for(lambda: engine.mode is TradingMode.READONLY, engine)
        assert alerts[-1].level == "critical" and "critical" in engine.mode_reason
        assert [e["type"] for e in stream_events(alerts[-1])] == ["risk"]
        cancelled = await engine.cancel(CancelOrder(client_order_id=resting.client_order_id))
        assert cancelled.status is OrderStatus.PENDING_CANCEL
    finally:
        await engine.stop()
