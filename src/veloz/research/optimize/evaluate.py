"""One chunk of evaluations, as a worker runs it: parameter sets over one period of the
bars, each to its `SweepMetrics`, by the numba kernels (`veloz.backtest.vectorized`) or by
the event-driven backtester.

The `Evaluation` (bars, costs, strategy) travels to each worker once; a `Chunk` names a
period and a few parameter sets, so that what crosses a process boundary per task is small.
"""

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import msgspec
import numba
import numpy as np

from veloz.backtest.data import BarSeries
from veloz.backtest.run import PreparedBacktest
from veloz.backtest.vectorized import SweepMetrics, evaluate_grid, metrics_from_statistics
from veloz.strategy.registry import parse_params, strategy_class


class Engine(StrEnum):
    AUTO = "auto"  # the kernels when the strategy has them, else event-driven
    VECTORIZED = "vectorized"
    EVENT = "event"


@dataclass(frozen=True)
class Evaluation:
    """What every evaluation of one optimisation shares. `template` is the prepared
    backtest of one valid parameter set: its bars, costs and strategy."""

    template: PreparedBacktest
    engine: Engine  # VECTORIZED or EVENT, resolved
    numba_threads: int | None = None  # per worker, so that workers do not oversubscribe


@dataclass(frozen=True)
class Chunk:
    """Parameter sets (fixed and searched values together) over bars [start_ns, end_ns)."""

    start_ns: int
    end_ns: int
    param_sets: tuple[Mapping[str, Any], ...]


def evaluate_chunk(evaluation: Evaluation, chunk: Chunk) -> list[SweepMetrics | None]:
    """The metrics of each set, in order; None where the statistics have no meaning."""
    if evaluation.numba_threads is not None:
        numba.set_num_threads(min(evaluation.numba_threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    template = evaluation.template
    bars = {
        symbol: period(series, chunk.start_ns, chunk.end_ns)
        for symbol, series in template.bars.items()
    }
    if evaluation.engine is Engine.VECTORIZED:
        traded = bars[template.spec.symbol]
        try:
            found: list[SweepMetrics | None] = list(
                evaluate_grid(template.request.strategy, chunk.param_sets, traded, template.config)
            )
        except ValueError:  # no meaning for some set: tell them apart one by one
            found = [_event(template, bars, params) for params in chunk.param_sets]
        return found
    return [_event(template, bars, params) for params in chunk.param_sets]


def period(series: BarSeries, start_ns: int, end_ns: int) -> BarSeries:
    lo = int(np.searchsorted(series.ts_ns, start_ns, side="left"))
    hi = int(np.searchsorted(series.ts_ns, end_ns, side="left"))
    return series if (lo, hi) == (0, len(series)) else series.slice(lo, hi)


def _event(
    template: PreparedBacktest, bars: dict[str, BarSeries], raw: Mapping[str, Any]
) -> SweepMetrics | None:
    prepared = prepared_for(template, raw, bars)
    stats = prepared.run().summary["statistics"]
    return None if stats is None else metrics_from_statistics(stats)


def prepared_for(
    template: PreparedBacktest,
    raw: Mapping[str, Any],
    bars: dict[str, BarSeries] | None = None,
) -> PreparedBacktest:
    """The template's backtest with other parameters (already checked) and bars."""
    cls = strategy_class(template.request.strategy, template.search_path)
    params = dict(raw)
    return replace(
        template,
        request=msgspec.structs.replace(template.request, params=params),
        params=parse_params(cls, params),
        spec=msgspec.structs.replace(template.spec, params=params),
        bars=template.bars if bars is None else bars,
    )
