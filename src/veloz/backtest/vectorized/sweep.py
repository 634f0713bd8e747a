"""Backtests of the built-in signal strategies without the bar loop: one run with its
fills and equity curve (`run_vectorized`), or the figures of many parameter sets at once
(`evaluate_grid`, the optimiser's hot path), equal to what the event-driven backtester
gives for the same request (docs/vectorized.md).

What the kernels reproduce is narrow on purpose: one symbol, MARKET orders with fill
model close or next_open, a cash or a margin account with no risk limits, balances only
in the symbol's two assets, a qty on the instrument's size grid. Anything else runs
event-driven here, so a caller never has to know which path answered.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
import numba
import numpy as np
from numpy.typing import NDArray

from veloz.backtest import analytics
from veloz.backtest.data import BarSeries
from veloz.backtest.engine import (
    AccountType,
    BacktestConfig,
    BacktestEngine,
    FillModel,
    FillRecord,
)
from veloz.backtest.equity_curve import equity_curve
from veloz.backtest.run import PreparedBacktest, strategy_spec
from veloz.backtest.vectorized import kernels as k
from veloz.backtest.vectorized.metrics import (
    SweepMetrics,
    metrics_from_statistics,
    metrics_from_sums,
)
from veloz.execution.venues.sim_matching import Slippage, fee_for
from veloz.model.enums import OrderSide
from veloz.model.instruments import Instrument, default_instrument, split_symbol
from veloz.strategy.base import StrategyParams
from veloz.strategy.builtin.bollinger_reversion import BollingerReversionParams
from veloz.strategy.builtin.donchian_breakout import DonchianBreakoutParams
from veloz.strategy.builtin.ema_cross import EmaCrossParams
from veloz.strategy.builtin.rsi_reversion import RsiReversionParams
from veloz.strategy.host import StrategySpec
from veloz.strategy.registry import parse_params, strategy_class

_BPS = Decimal(10_000)
_DEFAULT_RISK = BacktestConfig().risk

_KERNELS = frozenset({"ema_cross", "rsi_reversion", "bollinger_reversion", "donchian_breakout"})


def supports(strategy: str) -> bool:
    """Whether `strategy` has kernels (the built-in name, not a `module:Class`)."""
    return strategy in _KERNELS


@dataclass(frozen=True)
class VectorizedRun:
    fills: list[FillRecord]  # as `BacktestResult.fills`
    equity: NDArray[np.float64]  # per bar of the traded symbol, as `equity_curve(...).equity`
    metrics: SweepMetrics
    orders: int  # as `BacktestResult.orders`: taken by the core
    denied: int  # refused before the exchange saw them


def run_vectorized(prepared: PreparedBacktest) -> VectorizedRun:
    """The backtest `prepared` describes, by the kernels when they reproduce it (else by
    the backtester itself). Raises ValueError when the statistics have no meaning (a
    starting equity that is not positive)."""
    symbol = prepared.spec.symbol
    series = prepared.bars[symbol]
    plan = _Plan.of(prepared.request.strategy, series, prepared.config, len(prepared.bars))
    params = prepared.params
    if plan is None or not plan.fits(params):
        return _event_run(prepared)
    codes = np.empty(len(series), np.int8)
    _signal(prepared.request.strategy, params, series, codes)
    n = len(series)
    row = np.zeros(k.ROW)
    equity = np.empty(n)
    bar, units, order_no = (np.empty(n, np.int64) for _ in range(3))
    count = k.account(
        codes,
        _mode(prepared.request.strategy),
        open_=series.open,
        close=series.close,
        costs=plan.costs(params),
        out=row,
        equity_out=equity,
        fill_bar=bar,
        fill_units=units,
        fill_order=order_no,
    )
    fills = plan.fills(params, bar[:count], units[:count], order_no[:count], prepared.spec)
    return VectorizedRun(
        fills=fills,
        equity=equity,
        metrics=plan.metrics(row),
        orders=int(row[k.ORDERS]),
        denied=int(row[k.DENIED]),
    )


def evaluate_grid(
    strategy: str,
    param_sets: Sequence[Mapping[str, Any]],
    bars: BarSeries,
    config: BacktestConfig,
) -> list[SweepMetrics]:
    """The figures of each parameter set (raw values, checked like a request's: a bad one
    raises CommandRejected before anything runs), in the order given. The kernels run
    every set at once over the cores; sets they cannot reproduce run event-driven."""
    cls = strategy_class(strategy)
    parsed = [parse_params(cls, raw) for raw in param_sets]
    plan = _Plan.of(strategy, bars, config, 1)
    results: list[SweepMetrics | None] = [None] * len(parsed)
    by_qty: dict[Decimal, list[int]] = {}
    for index, params in enumerate(parsed):
        if plan is not None and plan.fits(params):
            by_qty.setdefault(params.qty, []).append(index)  # type: ignore[attr-defined]
        else:
            results[index] = _event_metrics(strategy, params, bars, config)
    if plan is not None:
        for indices in by_qty.values():
            group = [parsed[i] for i in indices]
            rows = np.zeros((len(group), k.ROW))
            _GRIDS[strategy](bars, group, plan.costs(group[0]), rows)
            for index, row in zip(indices, rows, strict=True):
                results[index] = plan.metrics(row)
    done = [metrics for metrics in results if metrics is not None]
    assert len(done) == len(parsed)  # every set went to a kernel group or the event path
    return done


# -- what the kernels are given ---------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """One symbol's bars and an account the kernels reproduce."""

    series: BarSeries
    config: BacktestConfig
    instrument: Instrument
    quote0: float
    base0: float
    interval_ns: int | None

    @classmethod
    def of(
        cls, strategy: str, series: BarSeries, config: BacktestConfig, symbols: int
    ) -> "_Plan | None":
        """None when the request is outside what the kernels reproduce."""
        if not supports(strategy) or symbols != 1 or config.risk != _DEFAULT_RISK:
            return None
        base, quote = split_symbol(series.symbol)
        if set(config.balances) - {base, quote}:
            return None  # another asset: valued (or not) by bars the kernels do not see
        instrument = default_instrument(series.symbol, Decimal(repr(float(series.close[0]))))
        return cls(
            series=series,
            config=config,
            instrument=instrument,
            quote0=float(config.balances.get(quote, Decimal(0))),
            base0=float(config.balances.get(base, Decimal(0))),
            interval_ns=analytics.periods_per_year(series.ts_ns)[0],
        )

    def fits(self, params: StrategyParams) -> bool:
        qty: Decimal = params.qty  # type: ignore[attr-defined]
        return qty % self.instrument.size_increment == 0 and qty <= self.instrument.max_qty / 2

    def costs(self, params: StrategyParams) -> NDArray[np.float64]:
        config = self.config
        costs = np.zeros(k.COSTS)
        costs[k.QTY] = float(params.qty)  # type: ignore[attr-defined]
        costs[k.QUOTE0] = self.quote0
        costs[k.BASE0] = self.base0
        costs[k.FEE_RATE] = float(config.taker_fee_bps / _BPS)
        costs[k.RESERVE_RATE] = float(max(config.taker_fee_bps, config.maker_fee_bps) / _BPS)
        slippage = Slippage.of(config.slippage_bps)
        costs[k.SLIP_BUY] = float(slippage.buy)
        costs[k.SLIP_SELL] = float(slippage.sell)
        costs[k.MIN_NOTIONAL] = float(self.instrument.min_notional)
        costs[k.MARGIN] = float(config.account is AccountType.MARGIN)
        costs[k.NEXT_OPEN] = float(config.fill is FillModel.NEXT_OPEN)
        return costs

    def metrics(self, row: NDArray[np.float64]) -> SweepMetrics:
        ts = self.series.ts_ns
        start = self.quote0 + self.base0 * float(self.series.close[0])
        if start <= 0:
            raise ValueError(f"the starting equity must be positive, got {start}")
        samples = len(ts)
        return metrics_from_sums(
            start_equity=start,
            end_equity=float(row[k.END_EQUITY]),
            samples=samples,
            elapsed_ns=int(ts[-1] - ts[0]),
            interval_ns=self.interval_ns,
            sums=(
                float(row[k.SUM_R]),
                float(row[k.SUM_R2]),
                float(row[k.SUM_DOWN2]),
                float(row[k.MIN_R]),
                float(row[k.MAX_R]),
            ),
            returns_defined=samples >= 2 and float(row[k.MIN_EQUITY]) > 0,
            max_drawdown=float(row[k.MAX_DD]),
            exposed=int(row[k.EXPOSED]),
            trades=int(row[k.TRADES]),
            fills=int(row[k.FILLS]),
            fees=float(row[k.FEES]),
        )

    def fills(
        self,
        params: StrategyParams,
        bar: NDArray[np.int64],
        units: NDArray[np.int64],
        order_no: NDArray[np.int64],
        spec: StrategySpec,
    ) -> list[FillRecord]:
        """The kernel's fills as the backtester records them, money in Decimal."""
        series, config, instrument = self.series, self.config, self.instrument
        qty: Decimal = params.qty  # type: ignore[attr-defined]
        prices = series.open if config.fill is FillModel.NEXT_OPEN else series.close
        slippage = Slippage.of(config.slippage_bps)
        prefix = f"vz-{int(series.ts_ns[0]) // 1_000_000:x}-"
        records = []
        for i, delta, number in zip(bar.tolist(), units.tolist(), order_no.tolist(), strict=True):
            side = OrderSide.BUY if delta > 0 else OrderSide.SELL
            touch = Decimal(repr(prices[i].item()))
            price = touch * (slippage.buy if delta > 0 else slippage.sell)
            fill_qty = abs(delta) * qty
            fee, fee_asset = fee_for(
                instrument, side, fill_qty, price, fee_bps=config.taker_fee_bps, mode="quote"
            )
            records.append(
                FillRecord(
                    ts_ns=int(series.ts_ns[i]),
                    symbol=series.symbol,
                    side=side.value,
                    qty=fill_qty,
                    price=price,
                    fee=fee,
                    fee_asset=fee_asset,
                    client_order_id=f"{prefix}{number}",
                    strategy_id=spec.strategy_id,
                )
            )
        return records


def _mode(strategy: str) -> int:
    return k.MODE_TARGET if strategy == "ema_cross" else k.MODE_LONG_FLAT


def _signal(
    strategy: str, params: StrategyParams, series: BarSeries, codes: NDArray[np.int8]
) -> None:
    close = series.close
    if isinstance(params, EmaCrossParams):
        k.ema_cross_signal(close, params.fast, params.slow, codes)
    elif isinstance(params, RsiReversionParams):
        k.rsi_signal(close, params.period, params.oversold, params.overbought, codes)
    elif isinstance(params, BollingerReversionParams):
        k.bollinger_signal(close, params.period, params.width, params.exit == "upper", codes)
    elif isinstance(params, DonchianBreakoutParams):
        k.donchian_signal(
            close,
            k.previous_extreme(series.high, params.entry, True),
            k.previous_extreme(series.low, params.exit, False),
            codes,
        )
    else:
        raise ValueError(f"no kernel for {strategy}")


# -- the grids: columns of parameters, shared indicator arrays -------------------------


def _ema_grid(
    series: BarSeries, group: list[Any], costs: NDArray[np.float64], out: NDArray[np.float64]
) -> None:
    fast = np.array([p.fast for p in group], np.int64)
    slow = np.array([p.slow for p in group], np.int64)
    k.ema_cross_grid(
        series.open,
        series.close,
        fast=fast,
        slow=slow,
        costs=costs,
        out=out,
        chunks=_chunks(len(group)),
    )


def _rsi_grid(
    series: BarSeries, group: list[Any], costs: NDArray[np.float64], out: NDArray[np.float64]
) -> None:
    period = np.array([p.period for p in group], np.int64)
    oversold = np.array([p.oversold for p in group], np.float64)
    overbought = np.array([p.overbought for p in group], np.float64)
    k.rsi_grid(
        series.open,
        series.close,
        period=period,
        oversold=oversold,
        overbought=overbought,
        costs=costs,
        out=out,
        chunks=_chunks(len(group)),
    )


def _bollinger_grid(
    series: BarSeries, group: list[Any], costs: NDArray[np.float64], out: NDArray[np.float64]
) -> None:
    period = np.array([p.period for p in group], np.int64)
    width = np.array([p.width for p in group], np.float64)
    upper = np.array([p.exit == "upper" for p in group], np.bool_)
    k.bollinger_grid(
        series.open,
        series.close,
        period=period,
        width=width,
        exit_upper=upper,
        costs=costs,
        out=out,
        chunks=_chunks(len(group)),
    )


def _donchian_grid(
    series: BarSeries, group: list[Any], costs: NDArray[np.float64], out: NDArray[np.float64]
) -> None:
    entries = sorted({p.entry for p in group})
    exits = sorted({p.exit for p in group})
    highs = np.stack([k.previous_extreme(series.high, period, True) for period in entries])
    lows = np.stack([k.previous_extreme(series.low, period, False) for period in exits])
    entry_row = np.array([entries.index(p.entry) for p in group], np.int64)
    exit_row = np.array([exits.index(p.exit) for p in group], np.int64)
    k.donchian_grid(
        series.open,
        series.close,
        highs=highs,
        lows=lows,
        entry_row=entry_row,
        exit_row=exit_row,
        costs=costs,
        out=out,
        chunks=_chunks(len(group)),
    )


def _chunks(sets: int) -> int:
    return min(sets, numba.get_num_threads() * 8)


_GRIDS: dict[
    str, Callable[[BarSeries, list[Any], NDArray[np.float64], NDArray[np.float64]], None]
] = {
    "ema_cross": _ema_grid,
    "rsi_reversion": _rsi_grid,
    "bollinger_reversion": _bollinger_grid,
    "donchian_breakout": _donchian_grid,
}


# -- the event-driven path, for what the kernels do not reproduce ---------------------------


def _event_run(prepared: PreparedBacktest) -> VectorizedRun:
    # The bar loop and one equity curve: the metrics are analysed from that curve rather
    # than from a summary that would build it again.
    result = BacktestEngine(
        prepared.config, prepared.bars, [prepared.spec], search_path=prepared.search_path
    ).run()
    curve = equity_curve(
        prepared.bars, result.fills, prepared.config.balances, prepared.spec.symbol
    )
    return VectorizedRun(
        fills=result.fills,
        equity=curve.equity,
        metrics=metrics_from_statistics(analytics.analyse(curve, result.fills)),
        orders=result.orders,
        denied=result.denied,
    )


def _event_metrics(
    strategy: str, params: StrategyParams, bars: BarSeries, config: BacktestConfig
) -> SweepMetrics:
    spec = strategy_spec(strategy, bars.symbol, msgspec.to_builtins(params))
    series = {bars.symbol: bars}
    result = BacktestEngine(config, series, [spec]).run()
    stats = analytics.backtest_statistics(series, result.fills, config.balances, bars.symbol)
    return metrics_from_statistics(stats)
