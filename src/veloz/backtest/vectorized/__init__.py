"""Vectorised backtests of the built-in signal strategies: numba kernels that give the
event-driven backtester's fills and figures for one run or many parameter sets at once
(docs/vectorized.md)."""

from veloz.backtest.vectorized.metrics import SweepMetrics, metrics_from_statistics
from veloz.backtest.vectorized.sweep import (
    VectorizedRun,
    evaluate_grid,
    run_vectorized,
    supports,
)

__all__ = [
    "SweepMetrics",
    "VectorizedRun",
    "evaluate_grid",
    "metrics_from_statistics",
    "run_vectorized",
    "supports",
]
