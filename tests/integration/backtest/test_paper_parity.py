"""Parity within VeloZ: `ema_cross` on the same bars through the backtester and through
the live runtime in paper mode (the sim venue, a replay market source driving a
simulated clock, the journal, strategies hosted live) makes the same orders and fills and
ends with the same equity."""

import random
from decimal import Decimal
from pathlib import Path

import msgspec

from tests.support.engine import NO_LIMITS
from veloz.backtest.data import load_bars
from veloz.backtest.engine import AccountType, BacktestConfig, BacktestEngine, FillModel
from veloz.clock import SimulatedClock
from veloz.engine.bus import BusMessage, Journaled
from veloz.execution.venues.sim import SimVenueConfig
from veloz.journal.writer import JournalConfig
from veloz.market.sim import SimMarketConfig
from veloz.model.events import OrderFilled
from veloz.runtime.live import EngineConfig, LiveEngine
from veloz.strategy.host import StrategySpec

D = Decimal
START = 1_704_067_200_000_000_000
MINUTE = 60_000_000_000
PARAMS = {"fast": "10", "slow": "20", "qty": "0.001"}


def random_walk(path: Path, bars: int = 3_000, seed: int = 11) -> Path:
    """Seeded 1-minute bars around 40,000 with one decimal, like the BTC sample."""
    rng = random.Random(seed)
    price, lines = 40_000.0, ["timestamp,open,high,low,close,volume"]
    for i in range(bars):
        open_ = price
        close = round(open_ * (1 + rng.gauss(0, 0.002)), 1)
        high = round(max(open_, close) + rng.random() * 20, 1)
        low = round(min(open_, close) - rng.random() * 20, 1)
        lines.append(f"{START + i * MINUTE},{open_},{high},{low},{close},{rng.random() * 50:.3f}")
        price = close
    path.write_text("\n".join(lines) + "\n")
    return path


def fill_rows(fills: list[OrderFilled]) -> list[tuple[int, str, Decimal, Decimal, Decimal]]:
    return [(f.ts_ns, f.side.value, f.qty, f.price, f.fee) for f in fills]


async def test_backtest_and_paper_trading_make_the_same_orders(tmp_path: Path) -> None:
    bars = random_walk(tmp_path / "bars.csv")
    balance = {"USDT": D(1_000_000)}

    backtest = BacktestEngine(
        BacktestConfig(account=AccountType.MARGIN, balances=balance, fill=FillModel.CLOSE),
        {"BTCUSDT": load_bars(bars, "BTCUSDT")},
        [StrategySpec(strategy_id="x", name="ema_cross", symbol="BTCUSDT", params=PARAMS)],
    )
    expected = backtest.run()
    assert len(expected.fills) > 50  # the walk crosses often enough to mean something

    config = EngineConfig(
        journal=JournalConfig(directory=str(tmp_path / "wal"), sync=False),
        market_source="replay",
        replay_file=str(bars),
        market=SimMarketConfig(symbols=("BTCUSDT",)),
        venue=SimVenueConfig(
            latency_ms=0,
            fee_asset="quote",
            margin=True,
            starting_balances=balance,
        ),
        risk=msgspec.structs.replace(NO_LIMITS, margin_leverage=D(1)),
        run_market=False,
    )
    paper = LiveEngine(config, SimulatedClock(START - MINUTE))
    fills: list[OrderFilled] = []

    def collect(message: BusMessage) -> None:
        if isinstance(message, Journaled) and isinstance(message.event, OrderFilled):
            fills.append(message.event)

    paper.bus.subscribe(collect)
    await paper.start()
    await paper.add_strategy(
        StrategySpec(strategy_id="x", name="ema_cross", symbol="BTCUSDT", params=PARAMS),
        "test",
        start=True,
    )
    await paper.market.start(paper.market_source)
    await paper.market.source_finished()
    await paper.settled()

    assert fill_rows(fills) == [(f.ts_ns, f.side, f.qty, f.price, f.fee) for f in expected.fills]
    assert paper.portfolio.equity() == expected.final_equity
    assert paper.core.strategy_position("x") == backtest.core.strategy_position("x")
    await paper.stop()
