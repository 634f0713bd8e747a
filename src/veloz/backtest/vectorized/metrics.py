"""The figures a parameter sweep ranks by (`SweepMetrics`), with the definitions of
`veloz.backtest.analytics`, from either path: the statistics of an event-driven run
(`metrics_from_statistics`) or the running sums a kernel keeps over its equity curve
(`metrics_from_sums`).

A kernel does not keep the curve: it keeps what the statistics need of it, one pass, per
parameter set. Periodic returns r_i = E_i / E_{i-1} - 1 from sample 0 (the starting
capital) on; their sum, sum of squares, sum of squared negative parts, smallest and
largest; the deepest fall from the running peak relative to the peak; how many samples
hold a position. The sample variance is then (S2 - S1^2 / n) / (n - 1): with returns of
1e-6..1e-3 and their mean far below their spread, no digit that matters cancels.
"""

import math
from decimal import Decimal
from typing import Any

import msgspec

from veloz.backtest.analytics import YEAR_NS, Statistics, cagr

# As analytics' `_constant`: returns whose spread float64 cannot tell from rounding.
_NOISE = 16 * 2.220446049250313e-16


class SweepMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """One parameter set's result, as `veloz.backtest.analytics` defines each figure."""

    total_return: float
    cagr: float | None
    volatility: float | None
    sharpe: float | None
    sortino: float | None
    max_drawdown: float
    calmar: float | None
    trades: int  # closed round trips
    fills: int
    final_equity: float
    fees: float  # in the quote asset
    exposure: float | None  # share of samples with a position open


def metrics_from_statistics(stats: Statistics | dict[str, Any]) -> SweepMetrics:
    """The sweep's figures of an event-driven run, from its `Statistics` or their JSON
    (the run summary's "statistics")."""
    data = stats.to_json() if isinstance(stats, Statistics) else stats
    trades = data["trades"]
    return SweepMetrics(
        total_return=float(data["total_return"]),
        cagr=_optional(data["cagr"]),
        volatility=_optional(data["volatility"]),
        sharpe=_optional(data["sharpe"]),
        sortino=_optional(data["sortino"]),
        max_drawdown=float(data["max_drawdown"]),
        calmar=_optional(data["calmar"]),
        trades=int(trades["trades"]),
        fills=int(trades["fills"]),
        final_equity=float(data["end_equity"]),
        fees=float(Decimal(str(trades["fees"]))),
        exposure=_optional(data["exposure"]),
    )


def metrics_from_sums(
    *,
    start_equity: float,
    end_equity: float,
    samples: int,
    elapsed_ns: int,
    interval_ns: int | None,
    sums: tuple[float, float, float, float, float],
    returns_defined: bool,
    max_drawdown: float,
    exposed: int,
    trades: int,
    fills: int,
    fees: float,
) -> SweepMetrics:
    """The figures from a kernel's running sums. `sums` is (sum r, sum r^2, sum
    min(r, 0)^2, min r, max r) over the samples - 1 returns; `returns_defined` is False when
    a sample before the last was not positive (analytics then has no returns at all)."""
    growth = cagr(start_equity, end_equity, elapsed_ns)
    vol = sharpe = sortino = None
    n = samples - 1
    if returns_defined and interval_ns is not None and n >= 2:
        per_year = YEAR_NS / interval_ns
        total, squares, downside, low, high = sums
        mean = total / n
        constant = high - low <= _NOISE * max(abs(low), abs(high))
        std = math.sqrt(max(squares - total * total / n, 0.0) / (n - 1))
        vol = 0.0 if constant else std * math.sqrt(per_year)
        sharpe = None if constant else mean / std * math.sqrt(per_year)
        down = math.sqrt(downside / n)
        sortino = None if down == 0.0 else mean * per_year / (down * math.sqrt(per_year))
    return SweepMetrics(
        total_return=end_equity / start_equity - 1.0,
        cagr=growth,
        volatility=_finite(vol),
        sharpe=_finite(sharpe),
        sortino=_finite(sortino),
        max_drawdown=max_drawdown,
        calmar=_finite(growth / max_drawdown) if growth is not None and max_drawdown > 0 else None,
        trades=trades,
        fills=fills,
        final_equity=end_equity,
        fees=fees,
        exposure=exposed / samples,
    )


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
