"""Bars and requests the optimiser's unit tests share: a seeded random walk held in
memory (handed to `prepare` through `read_source`), long enough for EMA crosses to trade."""

from typing import Any

import numpy as np

from veloz.backtest.data import BarSeries
from veloz.backtest.engine import AccountType
from veloz.backtest.run import BacktestRequest, DataRef
from veloz.research.optimize import OptimizationRequest, ParamRange

MINUTE_NS = 60 * 10**9
START_NS = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z


def random_walk(bars: int = 3_000, seed: int = 7) -> BarSeries:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, bars)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    return BarSeries(
        symbol="BTCUSDT",
        source="memory:random-walk",
        ts_ns=START_NS + np.arange(bars, dtype=np.int64) * MINUTE_NS,
        open=open_,
        high=np.maximum(open_, close) * 1.001,
        low=np.minimum(open_, close) * 0.999,
        close=close,
        volume=np.full(bars, 5.0),
    )


class Reader:
    """A `read_source` that counts its calls: a refused request must not read data."""

    def __init__(self, series: BarSeries | None = None) -> None:
        self.series = series if series is not None else random_walk()
        self.calls = 0

    def __call__(self, ref: DataRef) -> BarSeries:
        self.calls += 1
        return self.series


def request(**changes: Any) -> OptimizationRequest:
    """ema_cross on a margin account (long and short) over a 5 x 4 grid, fixed qty."""
    backtest = changes.pop("backtest", None) or BacktestRequest(
        strategy="ema_cross",
        data=[DataRef(symbol="BTCUSDT", source="memory:random-walk")],
        params={"qty": "0.5"},
        account=AccountType.MARGIN,  # long and short
    )
    fields: dict[str, Any] = {
        "backtest": backtest,
        "space": {
            "fast": ParamRange(low=2, high=10, step=2),
            "slow": ParamRange(values=[12, 20, 30, 50]),
        },
        "workers": 1,
    }
    fields.update(changes)
    return OptimizationRequest(**fields)
