"""Helpers for engine tests: configs on temporary journals, quotes driven by the test,
and waiting on published events instead of sleeping."""

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import msgspec

from veloz.engine.bus import BusMessage, Journaled
from veloz.execution.venues.sim import SimVenueConfig
from veloz.journal.writer import JournalConfig
from veloz.market.sim import SimMarketConfig
from veloz.model.enums import OrderStatus
from veloz.model.market import QuoteTick
from veloz.risk.engine import RiskConfig
from veloz.risk.limits import LoadedLimits, RiskLimits, SymbolLimits
from veloz.runtime.live import EngineConfig, LiveEngine

# LiveEngine tests that are not about risk trade without limits; risk tests set their own.
NO_LIMITS = RiskConfig(
    limits=LoadedLimits(
        limits=RiskLimits(
            defaults=SymbolLimits(), drawdown_warning_pct=None, drawdown_critical_pct=None
        ),
        source=None,
        loaded_at_ns=0,
        sha256=None,
    )
)


def engine_config(wal_dir: Path, risk: RiskConfig = NO_LIMITS, **journal: object) -> EngineConfig:
    return EngineConfig(
        journal=msgspec.structs.replace(JournalConfig(directory=str(wal_dir)), **journal),
        market=SimMarketConfig(symbols=("BTCUSDT", "ETHUSDT"), seed=7),
        venue=SimVenueConfig(latency_ms=0),
        run_market=False,
        drain_timeout_s=1.0,
        risk=risk,
    )


def quote(
    symbol: str = "BTCUSDT",
    bid: str = "50000",
    ask: str = "50001",
    size: str = "5",
    ts_ns: int | None = None,
) -> QuoteTick:
    """A quote stamped now (the engines under test run on the live clock)."""
    return QuoteTick(
        symbol=symbol,
        bid=Decimal(bid),
        ask=Decimal(ask),
        bid_size=Decimal(size),
        ask_size=Decimal(size),
        ts_ns=time.time_ns() if ts_ns is None else ts_ns,
    )


async def wait_for(
    predicate: Callable[[], bool], engine: LiveEngine, within_s: float = 5.0
) -> None:
    """Wait until `predicate()` holds, re-checking on every message the engine publishes."""
    if predicate():
        return
    ready = asyncio.get_running_loop().create_future()

    def check(_: BusMessage) -> None:
        if not ready.done() and predicate():
            ready.set_result(None)

    unsubscribe = engine.bus.subscribe(check)
    try:
        await asyncio.wait_for(ready, within_s)
    finally:
        unsubscribe()


async def wait_for_status(engine: LiveEngine, client_order_id: str, status: OrderStatus) -> None:
    def reached() -> bool:
        order = engine.oms.get(client_order_id)
        return order is not None and order.status is status

    await wait_for(reached, engine)


def journaled(engine: LiveEngine) -> list[Journaled]:
    seen: list[Journaled] = []
    engine.bus.subscribe(lambda m: seen.append(m) if isinstance(m, Journaled) else None)
    return seen


async def crash(engine: LiveEngine) -> None:
    """Leave the engine as a kill -9 right after its last journal sync would: no drain,
    no final checkpoint."""
    await engine.market.stop()
    await engine.execution.stop()
    await engine.venue.close()
    assert engine.journal is not None
    await engine.journal.close()
