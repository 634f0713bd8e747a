"""Backtest statistics: returns, risk and drawdowns from the equity curve sampled per bar,
and trade statistics from the fills (docs/analytics.md gives every formula).

Curve statistics are float64 numpy: they describe a curve, they do not keep accounts.
Money read from the fills (PnL, fees, notional) stays Decimal. A statistic that is not
defined for the input (a Sharpe ratio with zero volatility, a CAGR over no elapsed time, a
profit factor without a losing trade) is None, never NaN or infinity.

Conventions, chosen to match empyrical(-reloaded) where it has the statistic:
- periodic returns r_i = E_i / E_{i-1} - 1 between consecutive samples, risk-free rate 0;
- periods per year = 365 days / the median interval between samples (525,600 for 1-minute
  bars: crypto trades 24/7);
- volatility and Sharpe use the sample standard deviation (ddof=1);
- Sortino's downside deviation is sqrt(mean(min(r_i, 0)^2)) over all periods;
- CAGR compounds over elapsed calendar time, a year being 365 days;
- drawdowns are measured from the running peak of the curve, its first sample included.
"""

import math
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from veloz.backtest.data import BarSeries
from veloz.backtest.equity_curve import EquityCurve, equity_curve
from veloz.backtest.round_trips import Fill, RoundTrip, check_fill_order, fee_in_quote, round_trips

YEAR_NS = 365 * 86_400 * 10**9
ZERO = Decimal(0)
# Averages of money keep the engine's precision: 8 decimal places, half up like its fees.
_MONEY_STEP = Decimal("0.00000001")
_NOISE = 16 * float(np.finfo(np.float64).eps)


class Drawdown(msgspec.Struct, frozen=True, kw_only=True):
    """One fall from a peak: to its trough, and back to the peak's level if it got there."""

    absolute: float  # peak - trough, in the quote asset
    relative: float  # (peak - trough) / peak
    peak: float
    trough: float
    peak_ns: int
    trough_ns: int
    recovery_ns: int | None  # the first sample back at or above the peak; None: never
    peak_bar: int
    trough_bar: int
    recovery_bar: int | None
    recovered: bool
    decline_ns: int  # peak to trough
    decline_bars: int
    duration_ns: int  # peak to recovery, or to the last sample when not recovered
    duration_bars: int


class TradeStatistics(msgspec.Struct, frozen=True, kw_only=True):
    fills: int
    trades: int  # closed round trips
    open_trades: int  # symbols still holding a position at the end
    wins: int  # pnl > 0
    losses: int  # pnl < 0
    breakeven: int  # pnl == 0, counted in trades but neither a win nor a loss
    win_rate: float | None  # wins / trades
    gross_profit: Decimal  # sum of winning pnl
    gross_loss: Decimal  # minus the sum of losing pnl (>= 0)
    net_profit: Decimal  # sum of all closed trades' pnl
    profit_factor: float | None  # gross_profit / gross_loss; None without a loss
    average_win: Decimal | None
    average_loss: Decimal | None  # negative
    expectancy: Decimal | None  # net_profit / trades
    average_duration_ns: int | None
    traded_notional: Decimal  # sum of qty x price over all fills
    fees: Decimal  # sum of all fees, in the quote asset


class Statistics(msgspec.Struct, frozen=True, kw_only=True):
    start_ns: int
    end_ns: int
    samples: int
    interval_ns: int | None  # median step between samples
    periods_per_year: float | None
    start_equity: float
    end_equity: float
    total_return: float
    cagr: float | None
    volatility: float | None
    sharpe: float | None
    sortino: float | None
    max_drawdown: float  # the largest relative drawdown, 0 without one
    max_drawdown_abs: float  # the largest absolute drawdown (possibly another episode)
    drawdown: Drawdown | None  # the episode of max_drawdown
    drawdown_abs: Drawdown | None  # the episode of max_drawdown_abs
    longest_drawdown_ns: int  # longest time below a previous peak
    longest_drawdown_bars: int
    calmar: float | None
    exposure: float | None  # share of samples with a position open
    turnover: float | None  # traded notional / mean equity
    trades: TradeStatistics

    def to_json(self) -> dict[str, Any]:
        """Builtins for `json.dumps`: Decimals as strings, None as null; no NaN."""
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result


# -- the curve ------------------------------------------------------------------------------


def periodic_returns(equity: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """Simple returns between samples; None when a sample before the last is not positive
    (a return from zero or from a negative equity is not defined)."""
    if len(equity) < 2 or bool((equity[:-1] <= 0).any()):
        return None
    return np.asarray(equity[1:] / equity[:-1] - 1.0, dtype=np.float64)


def periods_per_year(ts_ns: NDArray[np.int64]) -> tuple[int | None, float | None]:
    """(median interval, periods per year); (None, None) for fewer than two samples."""
    if len(ts_ns) < 2:
        return None, None
    interval = int(np.median(np.diff(ts_ns)))
    return interval, YEAR_NS / interval


def cagr(start_equity: float, end_equity: float, elapsed_ns: int) -> float | None:
    """(end / start) ** (1 year / elapsed) - 1. None when no time elapsed, the start is not
    positive, the end is negative, or the result is beyond float64."""
    if elapsed_ns <= 0 or start_equity <= 0 or end_equity < 0:
        return None
    try:
        return float((end_equity / start_equity) ** (YEAR_NS / elapsed_ns) - 1.0)
    except OverflowError:  # a large gain over minutes compounds past float64
        return None


def _constant(values: NDArray[np.float64]) -> bool:
    """No spread that float64 can measure: the returns differ by no more than a few units
    of their last digit (exactly equal ones included), so their std is rounding noise."""
    return bool(np.ptp(values) <= _NOISE * np.abs(values).max())


def volatility(returns: NDArray[np.float64], per_year: float) -> float | None:
    """std(ddof=1) x sqrt(periods per year); 0 when the returns have no spread float64 can
    measure (see `_constant`), None for < 2 returns."""
    if len(returns) < 2:
        return None
    if _constant(returns):
        return 0.0
    return float(np.std(returns, ddof=1) * np.sqrt(per_year))


def sharpe(returns: NDArray[np.float64], per_year: float) -> float | None:
    """mean / std(ddof=1) x sqrt(periods per year); None for < 2 returns or no spread
    (see `_constant`)."""
    if len(returns) < 2 or _constant(returns):
        return None
    return float(returns.mean() / np.std(returns, ddof=1) * np.sqrt(per_year))


def sortino(returns: NDArray[np.float64], per_year: float) -> float | None:
    """mean x periods / (sqrt(mean(min(r, 0)^2)) x sqrt(periods)); None for < 2 returns or
    no return below zero."""
    if len(returns) < 2:
        return None
    downside = float(np.sqrt(np.mean(np.square(np.minimum(returns, 0.0)))))
    if downside == 0.0:
        return None
    return float(returns.mean() * per_year / (downside * np.sqrt(per_year)))


def drawdowns(
    ts_ns: NDArray[np.int64], equity: NDArray[np.float64]
) -> tuple[Drawdown | None, Drawdown | None, int, int]:
    """(the deepest relative drawdown, the deepest absolute one, the longest time under
    water in ns and in samples). Ties go to the earliest episode."""
    peaks = np.maximum.accumulate(equity)
    fall = peaks - equity
    if not bool((fall > 0).any()):
        return None, None, 0, 0
    relative = fall / peaks  # peaks > 0: the curve starts positive
    by_relative = _episode(ts_ns, equity, peaks, int(np.argmax(relative)))
    by_absolute = _episode(ts_ns, equity, peaks, int(np.argmax(fall)))
    # Under water: every run of samples below the running peak, from the peak's sample (the
    # one before the run; sample 0 is never under) to the recovery or the last sample.
    edges = np.diff(np.concatenate(([0], (fall > 0).astype(np.int8), [0])))
    peak_at = np.flatnonzero(edges == 1) - 1
    stop = np.minimum(np.flatnonzero(edges == -1), len(equity) - 1)
    spans_ns, spans_bars = ts_ns[stop] - ts_ns[peak_at], stop - peak_at
    longest = int(np.lexsort((spans_bars, spans_ns))[-1])  # longest in time, then in bars
    longest_ns, longest_bars = int(spans_ns[longest]), int(spans_bars[longest])
    return by_relative, by_absolute, longest_ns, longest_bars


def _episode(
    ts_ns: NDArray[np.int64], equity: NDArray[np.float64], peaks: NDArray[np.float64], trough: int
) -> Drawdown:
    peak_value = float(peaks[trough])
    peak = int(np.flatnonzero(equity[: trough + 1] == peak_value)[-1])
    back = np.flatnonzero(equity[trough:] >= peak_value)
    recovery = trough + int(back[0]) if len(back) else None
    end = recovery if recovery is not None else len(equity) - 1
    trough_value = float(equity[trough])
    fall = peak_value - trough_value
    return Drawdown(
        absolute=fall,
        relative=fall / peak_value,
        peak=peak_value,
        trough=trough_value,
        peak_ns=int(ts_ns[peak]),
        trough_ns=int(ts_ns[trough]),
        recovery_ns=None if recovery is None else int(ts_ns[recovery]),
        peak_bar=peak,
        trough_bar=trough,
        recovery_bar=recovery,
        recovered=recovery is not None,
        decline_ns=int(ts_ns[trough] - ts_ns[peak]),
        decline_bars=trough - peak,
        duration_ns=int(ts_ns[end] - ts_ns[peak]),
        duration_bars=end - peak,
    )


def _check_curve(ts_ns: NDArray[np.int64], equity: NDArray[np.float64]) -> None:
    if len(ts_ns) == 0 or len(ts_ns) != len(equity):
        raise ValueError("an equity curve needs at least one sample, as many values as times")
    if not bool(np.isfinite(equity).all()):
        raise ValueError("the equity curve has a NaN or infinite value")
    if len(ts_ns) > 1 and not bool((np.diff(ts_ns) > 0).all()):
        raise ValueError("the equity curve's times must be strictly increasing")
    if equity[0] <= 0:
        raise ValueError(f"the equity curve must start positive, got {float(equity[0])}")


# -- the fills ------------------------------------------------------------------------------


def trade_statistics(fills: Sequence[Fill]) -> TradeStatistics:
    check_fill_order(fills)
    closed, still_open = round_trips(fills)
    return _trade_statistics(fills, closed, len(still_open))


def _trade_statistics(
    fills: Sequence[Fill], closed: list[RoundTrip], open_trades: int
) -> TradeStatistics:
    won = [t.pnl for t in closed if t.pnl > 0]
    lost = [t.pnl for t in closed if t.pnl < 0]
    gross_profit = sum(won, ZERO)
    gross_loss = -sum(lost, ZERO)
    net = sum((t.pnl for t in closed), ZERO)
    n = len(closed)
    return TradeStatistics(
        fills=len(fills),
        trades=n,
        open_trades=open_trades,
        wins=len(won),
        losses=len(lost),
        breakeven=n - len(won) - len(lost),
        win_rate=len(won) / n if n else None,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        net_profit=net,
        profit_factor=float(gross_profit / gross_loss) if gross_loss else None,
        average_win=_money(gross_profit / len(won)) if won else None,
        average_loss=_money(-gross_loss / len(lost)) if lost else None,
        expectancy=_money(net / n) if n else None,
        average_duration_ns=sum(t.duration_ns for t in closed) // n if n else None,
        traded_notional=sum((f.qty * f.price for f in fills), ZERO),
        fees=sum((fee_in_quote(f) for f in fills), ZERO),
    )


def _finite(value: float | None) -> float | None:
    """None for a figure float64 cannot hold (a ratio past 1.8e308), never inf or NaN."""
    return value if value is not None and math.isfinite(value) else None


def _money(value: Decimal) -> Decimal:
    return value.quantize(_MONEY_STEP, rounding=ROUND_HALF_UP)


# -- together -------------------------------------------------------------------------------


def analyse(curve: EquityCurve, fills: Sequence[Fill]) -> Statistics:
    """Every statistic of a backtest: its equity curve (see `equity_curve`) and its fills."""
    ts_ns, equity = curve.ts_ns, curve.equity
    _check_curve(ts_ns, equity)
    trades = trade_statistics(fills)
    interval, per_year = periods_per_year(ts_ns)
    returns = periodic_returns(equity)
    start, end = float(equity[0]), float(equity[-1])
    growth = cagr(start, end, int(ts_ns[-1] - ts_ns[0]))
    by_relative, by_absolute, longest_ns, longest_bars = drawdowns(ts_ns, equity)
    max_dd = by_relative.relative if by_relative is not None else 0.0
    vol = sharpe_ratio = sortino_ratio = None
    if returns is not None and per_year is not None:
        vol = volatility(returns, per_year)
        sharpe_ratio = sharpe(returns, per_year)
        sortino_ratio = sortino(returns, per_year)
    mean_equity = float(equity.mean())
    return Statistics(
        start_ns=int(ts_ns[0]),
        end_ns=int(ts_ns[-1]),
        samples=len(ts_ns),
        interval_ns=interval,
        periods_per_year=per_year,
        start_equity=start,
        end_equity=end,
        total_return=end / start - 1.0,
        cagr=growth,
        volatility=_finite(vol),
        sharpe=_finite(sharpe_ratio),
        sortino=_finite(sortino_ratio),
        max_drawdown=max_dd,
        max_drawdown_abs=by_absolute.absolute if by_absolute is not None else 0.0,
        drawdown=by_relative,
        drawdown_abs=by_absolute,
        longest_drawdown_ns=longest_ns,
        longest_drawdown_bars=longest_bars,
        calmar=_finite(growth / max_dd) if growth is not None and max_dd > 0 else None,
        exposure=float(curve.exposed.mean()),
        turnover=_finite(float(trades.traded_notional) / mean_equity) if mean_equity > 0 else None,
        trades=trades,
    )


def backtest_statistics(
    bars: Mapping[str, BarSeries],
    fills: Sequence[Fill],
    balances: Mapping[str, Decimal],
    symbol: str | None = None,
) -> Statistics:
    """The statistics of a backtest run: the bars it played, its `BacktestResult.fills`, the
    starting balances of its `BacktestConfig`, and the traded symbol (the first of `bars`
    if not given)."""
    return analyse(equity_curve(bars, fills, balances, symbol), fills)
