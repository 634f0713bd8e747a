"""Strategies on the live engine: orders through the same risk and journal path, tagged
with the strategy id; the lifecycle journaled, so a restart (clean or a crash) resumes
what was running with its own position; a strategy that raises stopped alone with its
orders cancelled; risk applying to a strategy like to anyone."""

from decimal import Decimal
from pathlib import Path

import msgspec

from tests.support.engine import NO_LIMITS, crash, engine_config, quote, wait_for
from veloz.codec import decode_event
from veloz.journal.framing import EntryType, Record, scan
from veloz.model.enums import OrderStatus, StrategyState
from veloz.model.events import StrategyChanged
from veloz.risk.engine import RiskConfig
from veloz.risk.limits import LoadedLimits, RiskLimits, SymbolLimits
from veloz.runtime.live import LiveEngine
from veloz.strategy.host import StrategySpec

D = Decimal
BUYER = "tests.support.strategies:QuoteBuyer"


def spec(strategy_id: str, name: str = BUYER, **params: object) -> StrategySpec:
    return StrategySpec(strategy_id=strategy_id, name=name, symbol="BTCUSDT", params=params)


async def started(wal_dir: Path, risk: RiskConfig = NO_LIMITS) -> LiveEngine:
    engine = LiveEngine(engine_config(wal_dir, risk))
    await engine.start()
    return engine


def journaled_changes(wal_dir: Path) -> list[StrategyChanged]:
    changes = []
    for path in sorted(wal_dir.glob("orders_*.wal")):
        for record in scan(path.read_bytes()):
            if isinstance(record, Record) and record.entry_type == EntryType.StrategyChange:
                event = decode_event(record.entry_type, record.payload)
                assert isinstance(event, StrategyChanged)
                changes.append(event)
    return changes


async def test_a_strategy_trades_through_the_core_and_resumes_after_a_restart(
    wal_dir: Path,
) -> None:
    engine = await started(wal_dir)
    await engine.add_strategy(spec("buyer", qty="0.01", buys=1), "user:ana", start=True)
    engine.market.on_data(quote())
    running = engine.strategies.get("buyer")
    await wait_for(lambda: bool(running.strategy.fills), engine)  # type: ignore[attr-defined]
    [order] = [o for o in engine.oms.all_orders() if o.strategy_id == "buyer"]
    assert order.status is OrderStatus.FILLED and order.executed_qty == D("0.01")
    # Its own position: 0.01 less the fee the venue took in BTC.
    assert engine.core.strategy_position("buyer").qty == D("0.00999")  # type: ignore[union-attr]
    await engine.stop()

    changes = journaled_changes(wal_dir)
    assert [(c.strategy_id, c.state, c.actor) for c in changes] == [
        ("buyer", StrategyState.ADDED, "user:ana"),
        ("buyer", StrategyState.RUNNING, "user:ana"),
    ]
    assert changes[0].params == {"qty": "0.01", "buys": 1}

    restarted = await started(wal_dir)
    resumed = restarted.strategies.get("buyer")
    assert resumed.state is StrategyState.RUNNING
    assert resumed.strategy.starts == 1  # type: ignore[attr-defined]
    restarted.market.on_data(quote())
    # Its own position came back from the journal: it does not buy a second time.
    assert restarted.core.strategy_position("buyer").qty == D("0.00999")  # type: ignore[union-attr]
    assert [o for o in restarted.oms.open_orders() if o.strategy_id == "buyer"] == []
    await restarted.stop()


async def test_after_a_crash_it_resumes_as_last_journaled(wal_dir: Path) -> None:
    engine = await started(wal_dir)
    await engine.add_strategy(spec("buyer", qty="0.01", buys=2), "user:ana", start=True)
    await engine.add_strategy(spec("idle"), "user:ana", start=False)
    await engine.change_strategy("buyer", "pause", "user:bob")
    await crash(engine)  # no drain, no checkpoint: only the journal

    restarted = await started(wal_dir)
    states = {r.strategy_id: r.state for r in restarted.strategies.all()}
    assert states == {"buyer": StrategyState.PAUSED, "idle": StrategyState.ADDED}
    await restarted.change_strategy("buyer", "resume", "user:bob")
    restarted.market.on_data(quote())
    buyer = restarted.strategies.get("buyer")
    await wait_for(lambda: bool(buyer.strategy.fills), restarted)  # type: ignore[attr-defined]
    await restarted.change_strategy("idle", "remove", "user:bob")
    await restarted.stop()

    again = await started(wal_dir)
    assert [r.strategy_id for r in again.strategies.all()] == ["buyer"]
    await again.stop()


async def test_a_raising_strategy_is_stopped_alone_and_its_orders_cancelled(
    wal_dir: Path,
) -> None:
    engine = await started(wal_dir)
    await engine.add_strategy(
        spec("boom", "tests.support.strategies:Exploding"), "user:ana", start=True
    )
    await engine.add_strategy(spec("buyer", qty="0.01", buys=3), "user:ana", start=True)
    engine.market.on_data(quote())  # Exploding rests a bid; the buyer buys
    resting = [o for o in engine.oms.open_orders() if o.strategy_id == "boom"]
    assert len(resting) == 1
    engine.market.on_data(quote(bid="50010", ask="50011"))  # Exploding raises
    boom = engine.strategies.get("boom")
    assert boom.state is StrategyState.STOPPED
    assert boom.error == "ZeroDivisionError in on_quote: the strategy's own bug"
    await wait_for(lambda: resting[0].status is OrderStatus.CANCELLED, engine)
    buyer = engine.strategies.get("buyer")
    assert buyer.state is StrategyState.RUNNING
    await wait_for(lambda: len(buyer.strategy.fills) >= 1, engine)  # type: ignore[attr-defined]
    assert engine.ready
    await engine.stop()
    assert journaled_changes(wal_dir)[-1].reason == boom.error


async def test_risk_refuses_a_strategy_order_like_anyone_s(wal_dir: Path) -> None:
    tight = RiskConfig(
        limits=LoadedLimits(
            limits=RiskLimits(
                defaults=SymbolLimits(max_qty=D("0.001")),
                drawdown_warning_pct=None,
                drawdown_critical_pct=None,
            ),
            source=None,
            loaded_at_ns=0,
            sha256=None,
        )
    )
    engine = await started(wal_dir, tight)
    await engine.add_strategy(spec("buyer", qty="0.01", buys=1), "user:ana", start=True)
    engine.market.on_data(quote())
    running = engine.strategies.get("buyer")
    assert running.counts.denied == 1 and running.counts.orders == 0
    assert running.state is StrategyState.RUNNING
    assert engine.stats.rejections["qty_above_maximum"] == 1
    assert msgspec.to_builtins(engine.oms.all_orders()) == []
    await engine.stop()


async def test_a_strategy_that_never_returns_is_interrupted_and_stopped(wal_dir: Path) -> None:
    config = msgspec.structs.replace(engine_config(wal_dir), strategy_callback_deadline_s=0.2)
    engine = LiveEngine(config)
    await engine.start()
    await engine.add_strategy(
        spec("spin", "tests.support.strategies:Spinning"), "user:ana", start=True
    )
    await engine.add_strategy(spec("buyer", qty="0.01", buys=1), "user:ana", start=True)
    engine.market.on_data(quote())  # Spinning loops; the deadline interrupts it
    spin = engine.strategies.get("spin")
    assert spin.state is StrategyState.STOPPED
    assert spin.error == "StrategyOverran in on_quote: a callback ran for more than 0.2 s"
    buyer = engine.strategies.get("buyer")
    await wait_for(lambda: bool(buyer.strategy.fills), engine)  # type: ignore[attr-defined]
    await engine.stop()
