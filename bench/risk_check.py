"""Risk check cost per order, and whether P1 intake still holds with risk on.

- `check_us`: one `LiveEngine.risk_decision` (gathering the exposure from the OMS, portfolio and
  market, then every check: mode, order rate, sizes, notionals, price band, open orders,
  position with in-flight orders, free balance), with every limit set and none denying,
  timed over many calls; median of `--runs`.
- intake with risk off (no limits) and on (every limit set, an order-rate bucket) in the
  same run, the P1 closed loop (256 submitters, fsync on): the ratio is what risk costs.
"""

import argparse
import contextlib
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import msgspec

from bench.common import Target, emit, figure, median, record, run
from bench.intake import closed_loop, engine_config, isolate, the_quote, warm_up
from veloz.model.enums import OrderSide, OrderType, TimeInForce
from veloz.model.events import OrderSubmitted
from veloz.risk.engine import RiskConfig
from veloz.risk.limits import LoadedLimits, RiskLimits, SymbolLimits, parse_limits
from veloz.runtime.client import LocalEngineClient
from veloz.runtime.live import LiveEngine

NAME = "risk_check"
# Every limit set, generous enough that no bench order is denied: every check runs.
EVERY_LIMIT = parse_limits("""\
defaults:
  min_qty: 0.00001
  max_qty: 100
  min_notional: 5
  max_notional: 10000000
  price_band_pct: 60
  max_position_qty: 1000000
  max_position_notional: 100000000000
  max_open_orders: 10000000
max_open_orders: 10000000
""")
NO_LIMITS = RiskLimits(defaults=SymbolLimits())
TARGETS = (Target("intake_ratio_risk_on", ">=", 0.9),)


def risk(limits: RiskLimits, rate: float | None) -> RiskConfig:
    return RiskConfig(
        order_rate_limit=rate,
        limits=LoadedLimits(limits=limits, source="bench", loaded_at_ns=0, sha256=None),
    )


@contextlib.asynccontextmanager
async def engine_with(config: RiskConfig) -> AsyncIterator[LiveEngine]:
    directory = Path(tempfile.mkdtemp(prefix="veloz-risk-"))
    engine = LiveEngine(msgspec.structs.replace(engine_config(directory), risk=config))
    try:
        await engine.start()
        engine.market.on_data(the_quote())
        yield engine
    finally:
        await engine.stop()
        shutil.rmtree(directory, ignore_errors=True)


def submitted() -> OrderSubmitted:
    return OrderSubmitted(
        client_order_id="bench",
        symbol="BTCUSDT",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        qty=Decimal("0.001"),
        price=Decimal("47500.00"),
        ts_ns=0,
    )


async def check_us(calls: int) -> float:
    async with engine_with(risk(EVERY_LIMIT, 1e12)) as engine:
        event = submitted()
        assert engine.risk_decision(event) is None, "the bench order must pass every check"
        started = time.perf_counter_ns()
        for _ in range(calls):
            engine.risk_decision(event)
        return (time.perf_counter_ns() - started) / calls / 1000


async def intake(config: RiskConfig, orders: int) -> float:
    async with engine_with(config) as engine:
        client = LocalEngineClient(engine)
        await warm_up(client, 2_000, 256)
        isolate()
        result = await closed_loop(client, orders, 256)
        return result.orders / result.seconds


async def one_run(orders: int, calls: int) -> dict[str, float]:
    off = await intake(risk(NO_LIMITS, None), orders)
    on = await intake(risk(EVERY_LIMIT, 1e12), orders)
    return {
        "check_us": await check_us(calls),
        "intake_risk_off": off,
        "intake_risk_on": on,
        "intake_ratio_risk_on": on / off,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--orders", type=int, default=50_000)
    parser.add_argument("--calls", type=int, default=100_000)
    args = parser.parse_args(argv)
    runs = [run(lambda: one_run(args.orders, args.calls)) for _ in range(args.runs)]
    figures = {}
    for key, unit in (
        ("check_us", "us"),
        ("intake_risk_off", "orders/s"),
        ("intake_risk_on", "orders/s"),
        ("intake_ratio_risk_on", "x"),
    ):
        values = [r[key] for r in runs]
        figures[key] = figure(median(values), unit, values)
        emit(NAME, key, median(values), unit)
    path = record(
        NAME,
        figures,
        targets=TARGETS,
        notes="check_us: LiveEngine.risk_decision with every limit set and none denying, "
        f"{args.calls} calls. Intake: the P1 closed loop (256 submitters, fsync on, "
        f"{args.orders} resting LIMIT BUYs) with no limits, then with every limit and an "
        "order-rate bucket, in the same run.",
    )
    emit(NAME, "recorded", 0, "", path=str(path))


if __name__ == "__main__":
    main()
