"""HTML reports: one self-contained file for a backtest (`render_backtest_report`) or an
optimisation (`render_optimization_report`), to open from disk with no network.

Owns what a report shows and how the figures are prepared for it; the page itself is the
jinja2 templates in `templates/` (autoescaped: every value from a run is HTML-escaped) and
the charts are the vendored lightweight-charts (`veloz/ui/vendor/`), its JavaScript inlined.

A browser draws the charts, so the series are cut to what a screen can show, from the
exact per-bar figures: candles are the bars aggregated into wider buckets (at most
`MAX_CANDLES`), the equity and drawdown curves keep, per bucket, the samples where the
equity is lowest and highest and the drawdown deepest, so no peak or trough is lost. The
monthly returns, the statistics and the trades are computed on the full data.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

import jinja2
import msgspec
import numpy as np
from markupsafe import Markup
from numpy.typing import NDArray

import veloz
from veloz.backtest.data import BarSeries
from veloz.backtest.equity_curve import EquityCurve, equity_curve
from veloz.backtest.round_trips import Fill, RoundTrip, fill_flows, round_trips
from veloz.backtest.run import BacktestOutcome

MAX_CANDLES = 3_000
MAX_TRADES_SHOWN = 2_000
CHARTS_JS = "lightweight-charts.standalone.production.js"
CHARTS_NOTICE = "TradingView Lightweight Charts™, Copyright (c) TradingView, Inc., Apache-2.0"
ZERO = Decimal(0)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Bucket widths in bars that read well for minute, hour and day bars.
_ROUND_FACTORS = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60, 120, 180, 240, 360, 720, 1440)
_SIGNIFICANT = 10  # digits kept of a charted float: far below a pixel, half the JSON


class OptimizationReport(msgspec.Struct, frozen=True, kw_only=True):
    """What an optimisation report shows; `veloz.research.optimize` fills it."""

    strategy: str
    objective: str  # "sharpe" | "sortino" | "calmar" | "total_return"
    method: str  # "grid" | "random" | "optuna"
    seed: int
    data: list[dict[str, Any]]  # like a backtest summary's "data"
    start: str  # ISO 8601
    end: str
    evaluations: int
    best_params: dict[str, Any]
    best_score: float | None
    best_metrics: dict[str, Any]
    columns: list[str]  # the order of the columns in `rows`
    rows: list[dict[str, Any]]  # the top rows, best first
    # keys: fold, in_sample_start, in_sample_end, out_of_sample_start, out_of_sample_end,
    # best_params, in_sample_score, out_of_sample (a metrics dict)
    walk_forward: list[dict[str, Any]] | None = None


# -- the figures -----------------------------------------------------------------------------


@dataclass(frozen=True)
class YearReturns:
    year: int
    months: list[float | None]  # January first; None where the curve has no sample
    total: float | None


def monthly_returns(ts_ns: NDArray[np.int64], equity: NDArray[np.float64]) -> list[YearReturns]:
    """Each calendar month's return (UTC), compounded within the month: its last equity over
    the last equity before it (the previous month's close, or the curve's first sample for
    the first month), minus one. A year's total is the same over the year. A return on a
    base that is not positive has no meaning: None."""
    months = ts_ns.astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64)
    last = [*np.flatnonzero(np.diff(months) != 0).tolist(), len(months) - 1]
    closes = {int(months[i]): float(equity[i]) for i in last}  # month number since 1970-01
    first = float(equity[0])
    rows: list[YearReturns] = []
    previous = first
    for year in range(int(months[0]) // 12 + 1970, int(months[-1]) // 12 + 1971):
        opening = previous
        row: list[float | None] = []
        for month in range(12):
            close = closes.get((year - 1970) * 12 + month)
            if close is None:
                row.append(None)
                continue
            row.append(_growth(previous, close))
            previous = close
        rows.append(YearReturns(year=year, months=row, total=_growth(opening, previous)))
    return rows


def _growth(base: float, close: float) -> float | None:
    return close / base - 1.0 if base > 0 else None


@dataclass(frozen=True)
class Buckets:
    """Samples grouped by time into buckets `width_ns` wide, aligned on the epoch (as an
    exchange's candles); only the buckets that hold a sample are listed."""

    width_ns: int
    bucket_ns: NDArray[np.int64]  # each non-empty bucket's start time
    starts: NDArray[np.intp]  # the index of each bucket's first sample
    samples: int

    @property
    def ends(self) -> NDArray[np.intp]:
        """The index after each bucket's last sample."""
        return np.append(self.starts[1:], self.samples)


def buckets(ts_ns: NDArray[np.int64], interval_ns: int, limit: int) -> Buckets:
    """The narrowest multiple of `interval_ns` (a round one, as 15 or 60 bars, when one
    fits) that groups `ts_ns` into at most about `limit` buckets (`limit + 1`: the first
    and last may be partial)."""
    span = int(ts_ns[-1] - ts_ns[0])
    needed = max(1, math.ceil(span / (limit * interval_ns)))
    factor = next((f for f in _ROUND_FACTORS if f >= needed), needed)
    width = factor * interval_ns
    keys = ts_ns // width
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    return Buckets(width, keys[starts] * width, starts, len(ts_ns))


def candles(series: BarSeries, grouped: Buckets) -> dict[str, list[float] | list[int]]:
    """The bars aggregated into `grouped`'s buckets: first open, highest high, lowest low,
    last close; time in seconds, as lightweight-charts takes it."""
    starts, ends = grouped.starts, grouped.ends
    return {
        "t": _seconds(grouped.bucket_ns),
        "o": _floats(series.open[starts]),
        "h": _floats(np.maximum.reduceat(series.high, starts)),
        "l": _floats(np.minimum.reduceat(series.low, starts)),
        "c": _floats(series.close[ends - 1]),
    }


def curve_points(curve: EquityCurve, grouped: Buckets) -> dict[str, list[float] | list[int]]:
    """The equity and its drawdown (equity / running peak - 1, from the full curve) at
    the samples that keep each bucket's extremes: the lowest and highest equity and the
    deepest drawdown, plus the first and the last sample."""
    equity = curve.equity
    peaks = np.maximum.accumulate(equity)
    # Under a peak of zero or less (no starting capital) a drawdown has no meaning: 0.
    drawdown = np.zeros_like(equity)
    np.divide(equity, peaks, out=drawdown, where=peaks > 0)
    drawdown = np.where(peaks > 0, drawdown - 1.0, 0.0)
    starts = grouped.starts
    picks = [
        starts,
        _arg_reduce(equity, starts, grouped.ends, np.minimum),
        _arg_reduce(equity, starts, grouped.ends, np.maximum),
        _arg_reduce(drawdown, starts, grouped.ends, np.minimum),
        np.array([len(equity) - 1]),
    ]
    keep = np.unique(np.concatenate(picks))
    seconds = curve.ts_ns[keep] // 10**9
    # Bars closer than a second apart share a chart time: keep the first of each.
    keep = keep[np.concatenate(([True], seconds[1:] != seconds[:-1]))]
    return {
        "t": _seconds(curve.ts_ns[keep]),
        "equity": _floats(equity[keep]),
        "drawdown": _floats(drawdown[keep]),
    }


def _arg_reduce(
    values: NDArray[np.float64],
    starts: NDArray[np.intp],
    ends: NDArray[np.intp],
    reduce: np.ufunc,
) -> NDArray[np.intp]:
    """The index of the first sample equal to each bucket's reduced value."""
    extreme = np.repeat(reduce.reduceat(values, starts), ends - starts)
    hits = np.flatnonzero(values == extreme)
    first_hit = np.searchsorted(hits, starts)  # every bucket holds its own extreme
    return hits[first_hit]


def trade_markers(
    fills: Sequence[Fill], trips: Sequence[RoundTrip], symbol: str, width_ns: int
) -> list[dict[str, Any]]:
    """Entries and exits of `symbol`'s round trips (and the entry of a position still open)
    on the candle that holds them: entry arrows point the way of the trade, exits are dots
    coloured by the trade's result."""
    marks: list[tuple[int, int, str]] = []
    for trip in trips:
        if trip.symbol != symbol:
            continue
        marks.append((trip.entry_ns, 1, trip.side))
        marks.append((trip.exit_ns, 0, "win" if trip.pnl > 0 else "loss"))
    still_open = open_entry([f for f in fills if f.symbol == symbol])
    if still_open is not None:
        marks.append((still_open[0], 1, still_open[1]))
    marks.sort()  # by time; at one time the exit before the entry it flips into
    return [{"t": ts // width_ns * width_ns // 10**9, "k": kind} for ts, _, kind in marks]


def open_entry(fills: Iterable[Fill]) -> tuple[int, str] | None:
    """(time, "long"|"short") of the fill that opened the position still held after
    `fills` (one symbol's), or None when they end flat."""
    held = ZERO
    opened: tuple[int, str] | None = None
    for fill in fills:
        before = held
        held += fill_flows(fill)[0]
        if held == ZERO:
            opened = None
        elif before == ZERO or (before > ZERO) != (held > ZERO):
            opened = (fill.ts_ns, "long" if held > ZERO else "short")
    return opened


def _seconds(ts_ns: NDArray[np.int64]) -> list[int]:
    seconds: list[int] = (ts_ns // 10**9).tolist()
    return seconds


def _floats(values: NDArray[np.float64]) -> list[float]:
    return [float(f"{v:.{_SIGNIFICANT}g}") for v in values.tolist()]


# -- formatting ------------------------------------------------------------------------------

_RATIOS = {"total_return", "cagr", "volatility", "max_drawdown", "exposure", "win_rate"}
_RATIOS |= {"relative"}
_TIMES = {"start_ns", "end_ns", "peak_ns", "trough_ns", "recovery_ns"}
_DURATIONS = {"interval_ns", "longest_drawdown_ns", "decline_ns", "duration_ns"}
_DURATIONS |= {"average_duration_ns"}
_MONEY = {"start_equity", "end_equity", "max_drawdown_abs", "absolute", "peak", "trough"}
_MONEY |= {"final_equity", "fees"}


def utc_time(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns // 10**9, UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(ns: int) -> str:
    """Days, hours, minutes and seconds, the largest two that are not zero ("3 d 4 h")."""
    seconds = ns // 10**9
    if seconds == 0:
        return f"{ns / 1e9:g} s"
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}")
    return " ".join(parts[:2])


def number(value: Any) -> str:
    """A figure for reading: thousands grouped, money to at most 8 decimals (trailing zeros
    dropped), other floats to 4 decimals; None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Decimal) or (isinstance(value, str) and _is_decimal(value)):
        exact = Decimal(value)
        if exact.adjusted() >= 19:  # 8 decimals more would pass Decimal's 28 digits
            return f"{exact:,.0f}"
        text = f"{exact.quantize(Decimal('1e-8')):,f}"
        text = text.rstrip("0").rstrip(".") if "." in text else text
        return "0" if text == "-0" else text
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.4f}" if abs(value) < 1e15 else f"{value:.4g}"
    return str(value)


def _is_decimal(text: str) -> bool:
    try:
        return Decimal(text).is_finite()
    except ArithmeticError:
        return False


def trade_return(trip: RoundTrip) -> float | None:
    """The trade's PnL over the notional it opened."""
    notional = trip.qty * trip.entry_price
    return float(trip.pnl / notional) if notional else None


def ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2%}"


def statistic(key: str, value: Any) -> str:
    """One statistic (a key of `Statistics`/`TradeStatistics`/`Drawdown`), formatted by
    what it measures."""
    if value is None:
        return "—"
    if key in _RATIOS:
        return ratio(float(value))
    if key in _TIMES:
        return utc_time(int(value))
    if key in _DURATIONS:
        return duration(int(value))
    if key in _MONEY and isinstance(value, float):
        return number(Decimal(repr(value)))
    return number(value)


def statistics_tables(stats: Mapping[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Every field of a summary's "statistics", formatted: (title, [(label, value)]) for
    the curve and for each nested group (the trades, the two drawdown episodes)."""
    titles = {
        "trades": "Trades",
        "drawdown": "Deepest drawdown (relative)",
        "drawdown_abs": "Deepest drawdown (absolute)",
    }
    tables: list[tuple[str, list[tuple[str, str]]]] = [("Returns and risk", [])]
    for key, value in stats.items():
        if isinstance(value, Mapping):
            tables.append((titles.get(key, key), _rows(value)))
        elif key in titles and value is None:
            tables.append((titles[key], [("none", "—")]))
        else:
            tables[0][1].append((_label(key), statistic(key, value)))
    return tables


def _rows(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(_label(key), statistic(key, value)) for key, value in values.items()]


def _label(key: str) -> str:
    return key.removesuffix("_ns").replace("_", " ")


def _cell_colour(value: float | None) -> str:
    """A background for a monthly return: green up, red down, stronger with size (±10 %
    full)."""
    if value is None:
        return ""
    strength = min(abs(value) / 0.10, 1.0) * 0.55 + 0.08
    rgb = "22, 163, 74" if value >= 0 else "220, 38, 38"
    return f"background: rgba({rgb}, {strength:.2f})"


# -- the pages -------------------------------------------------------------------------------


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("veloz.backtest", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # The chart data: compact JSON (a tenth smaller than with spaces).
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "separators": (",", ":")}
    env.filters.update(
        number=number,
        ratio=ratio,
        utc_time=utc_time,
        duration=duration,
        trade_return=trade_return,
    )
    env.globals.update(
        charts_js=_charts_js(), charts_notice=CHARTS_NOTICE, version=veloz.__version__
    )
    return env


def _charts_js() -> Markup:
    """The vendored lightweight-charts, to inline in a <script>: it must not close it."""
    text = resources.files("veloz").joinpath("ui", "vendor", CHARTS_JS).read_text("utf-8")
    if "</script" in text.lower():
        raise RuntimeError(f"{CHARTS_JS} contains '</script' and cannot be inlined")
    return Markup(text)  # the vendored file, pinned by its sha256 in the manifest


@dataclass(frozen=True)
class _Traded:
    """The traded symbol of a run: its bars, its equity curve and their chart buckets."""

    symbol: str
    series: BarSeries
    interval_ns: int
    curve: EquityCurve
    grouped: Buckets


def _traded(outcome: BacktestOutcome) -> _Traded:
    summary = outcome.summary
    symbol = summary["data"][0]["symbol"]
    series = outcome.bars[symbol]
    balances = {asset: Decimal(amount) for asset, amount in summary["config"]["balances"].items()}
    curve = equity_curve(outcome.bars, outcome.result.fills, balances, symbol)
    interval = series.interval_ns if len(series) > 1 else 10**9  # one bar: any width will do
    grouped = buckets(series.ts_ns, interval, MAX_CANDLES)
    return _Traded(symbol, series, interval, curve, grouped)


def render_backtest_report(outcome: BacktestOutcome) -> str:
    """The report of one backtest run as one HTML page."""
    summary = outcome.summary
    traded = _traded(outcome)
    fills = outcome.result.fills
    trips, open_symbols = round_trips(fills)
    points = curve_points(traded.curve, traded.grouped)
    stats = summary.get("statistics")
    context = {
        "title": f"Backtest: {summary['strategy']} on {traded.symbol}",
        "summary": summary,
        "symbol": traded.symbol,
        "quote": traded.curve.quote_asset,
        "stats": stats,
        "statistics_tables": statistics_tables(stats) if stats else [],
        "monthly": monthly_returns(traded.curve.ts_ns, traded.curve.equity),
        "month_names": _MONTHS,
        "cell_colour": _cell_colour,
        "bars": len(traded.series),
        "bar_interval": duration(traded.interval_ns),
        "candle_count": len(traded.grouped.starts),
        "candle_width": duration(traded.grouped.width_ns),
        "curve_points": len(points["t"]),
        "trades": trips[:MAX_TRADES_SHOWN],
        "trades_hidden": max(0, len(trips) - MAX_TRADES_SHOWN),
        "trades_total": len(trips),
        "open_symbols": open_symbols,
        "several_symbols": len({t.symbol for t in trips}) > 1,
        "chart_data": {
            "quote": traded.curve.quote_asset,
            "curve": points,
            "candles": candles(traded.series, traded.grouped),
            "markers": trade_markers(fills, trips, traded.symbol, traded.grouped.width_ns),
        },
    }
    return _environment().get_template("backtest_report.html.j2").render(context)


def render_optimization_report(report: OptimizationReport, best: BacktestOutcome | None) -> str:
    """The report of an optimisation as one HTML page; with `best` (the best parameters'
    backtest), its equity and drawdown charts and monthly returns."""
    chart_data: dict[str, Any] | None = None
    monthly: list[YearReturns] = []
    if best is not None:
        traded = _traded(best)
        points = curve_points(traded.curve, traded.grouped)
        chart_data = {"quote": traded.curve.quote_asset, "curve": points}
        monthly = monthly_returns(traded.curve.ts_ns, traded.curve.equity)
    context = {
        "title": f"Optimisation: {report.strategy}",
        "report": report,
        "metric_columns": _metric_columns(report),
        "monthly": monthly,
        "month_names": _MONTHS,
        "cell_colour": _cell_colour,
        "chart_data": chart_data,
        "statistic": statistic,
    }
    return _environment().get_template("optimization_report.html.j2").render(context)


def _metric_columns(report: OptimizationReport) -> list[str]:
    """The metrics of the walk-forward folds' out-of-sample results, in first-seen order."""
    columns: dict[str, None] = {}
    for fold in report.walk_forward or ():
        for key in fold.get("out_of_sample") or {}:
            columns.setdefault(key, None)
    return list(columns)
