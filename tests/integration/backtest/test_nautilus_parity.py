"""Parity with NautilusTrader, kept by CI: `ema_cross` (10/20, qty 0.001, margin account
of 1,000,000 USDT, 0.1 % fee, same-bar-close fills) on NautilusTrader's public BTC bars
must make exactly the fills NautilusTrader 1.221.0's own engine made on them, and end
with its final equity. NautilusTrader's side was recorded by
`bench/peers/nautilus_ema_cross.py` (see bench/peers/README.md); `python -m
bench.backtest` runs both engines again side by side."""

import csv
import json
from decimal import Decimal
from pathlib import Path

from tests.support.sample_bars import sample_path
from veloz.backtest.data import load_bars
from veloz.backtest.engine import AccountType, BacktestConfig, BacktestEngine, FillModel
from veloz.strategy.host import StrategySpec

PEER = Path(__file__).resolve().parents[3] / "bench" / "results" / "peers"


def test_ema_cross_makes_nautilus_traders_fills_and_equity() -> None:
    engine = BacktestEngine(
        BacktestConfig(
            account=AccountType.MARGIN,
            balances={"USDT": Decimal(1_000_000)},
            maker_fee_bps=Decimal(10),
            taker_fee_bps=Decimal(10),
            fill=FillModel.CLOSE,
        ),
        {"BTCUSDT": load_bars(sample_path(), "BTCUSDT")},
        [
            StrategySpec(
                strategy_id="parity",
                name="ema_cross",
                symbol="BTCUSDT",
                params={"fast": 10, "slow": 20, "qty": "0.001"},
            )
        ],
    )
    result = engine.run()
    with (PEER / "nautilus_ema_cross_45k_orders.csv").open() as recorded:
        theirs = [
            (int(row["ts_ns"]), row["side"], Decimal(row["qty"]), Decimal(row["price"]),
             Decimal(row["fee"]))
            for row in csv.DictReader(recorded)
        ]  # fmt: skip
    ours = [(f.ts_ns, f.side, f.qty, f.price, f.fee) for f in result.fills]
    assert len(ours) == len(theirs) == 2_067
    assert ours == theirs
    summary = json.loads((PEER / "nautilus_ema_cross_45k.json").read_text())
    assert result.final_equity == Decimal(summary["final_equity"])
    assert result.fees == Decimal(summary["fees"])
    assert result.final_positions["BTCUSDT"] == Decimal(summary["final_position"])
