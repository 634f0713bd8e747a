"""One backtest from request to summary, the same for every caller: `veloz backtest run`,
the optimiser's event-driven evaluations and the API's backtest jobs.

    request (strategy, parameters, data, costs, period)
      -> prepare: every check, then the bars read and cut to the period  (CommandRejected,
         BarDataError: nothing has run)
      -> run: the bar loop, then the summary and the statistics

The summary is plain JSON-ready data (decimals as strings) so that it can be written to
disk, sent over HTTP and rendered in a report without another shape.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import msgspec
import numpy as np

from veloz.backtest.analytics import backtest_statistics
from veloz.backtest.data import STORE_PREFIX, BarDataError, BarSeries, load_bars, load_stored
from veloz.backtest.engine import (
    AccountType,
    BacktestConfig,
    BacktestEngine,
    BacktestResult,
    BarPath,
    FillModel,
)
from veloz.model.errors import CommandRejected
from veloz.strategy.base import StrategyParams
from veloz.strategy.host import StrategySpec
from veloz.strategy.registry import parse_params, strategy_class

Progress = Callable[[int, int], None]


class DataRef(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where one symbol's bars come from: a file (CSV, zip, Parquet) or
    `store:VENUE/SYMBOL/INTERVAL` in the data store."""

    symbol: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    source: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]


def _default_balances() -> dict[str, Decimal]:
    return {"USDT": Decimal(10_000)}


class BacktestRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A backtest to run. The first `data` entry is the traded symbol; `start` and `end`
    (ISO 8601 dates or times, UTC when no offset is given; end exclusive) cut the bars."""

    strategy: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    data: Annotated[list[DataRef], msgspec.Meta(min_length=1, max_length=16)]
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    account: AccountType = AccountType.CASH
    balances: dict[str, Decimal] = msgspec.field(default_factory=_default_balances)
    fee_bps: Decimal = Decimal(10)
    slippage_bps: Decimal = Decimal(0)
    fill: FillModel = FillModel.CLOSE
    path: BarPath = BarPath.OHLC
    start: str | None = None
    end: str | None = None

    @property
    def symbol(self) -> str:
        return self.data[0].symbol.upper()


@dataclass(frozen=True)
class BacktestOutcome:
    result: BacktestResult
    bars: dict[str, BarSeries]
    summary: dict[str, Any]  # JSON-ready; "statistics" is None when they have no meaning


@dataclass(frozen=True)
class PreparedBacktest:
    """A checked request with its bars read: `run` cannot fail on input."""

    request: BacktestRequest
    config: BacktestConfig
    params: StrategyParams
    spec: StrategySpec
    bars: dict[str, BarSeries]
    search_path: tuple[str, ...]

    def run(self, progress: Progress | None = None) -> BacktestOutcome:
        engine = BacktestEngine(self.config, self.bars, [self.spec], search_path=self.search_path)
        result = engine.run(progress)
        summary = summarise(result, self.spec.symbol, self.config)
        summary["strategy"] = self.request.strategy
        summary["params"] = msgspec.to_builtins(self.params)
        summary["data"] = [
            {"symbol": symbol, "source": series.source, "bars": len(series)}
            for symbol, series in self.bars.items()
        ]
        summary["statistics"] = statistics(
            self.bars, result, self.config.balances, self.spec.symbol
        )
        return BacktestOutcome(result=result, bars=self.bars, summary=summary)


def prepare(
    request: BacktestRequest,
    search_path: Sequence[str] = (),
    *,
    read_source: Callable[[DataRef], BarSeries] | None = None,
) -> PreparedBacktest:
    """Check `request` and read its bars. The strategy and its parameters are checked
    before any data is read: a wrong name costs nothing. `read_source` replaces how a
    `DataRef` is read (the API allows only the data store and the data directory)."""
    search = tuple(search_path)
    check_costs(request)
    cls = strategy_class(request.strategy, search)
    params = parse_params(cls, request.params)
    sources: dict[str, str] = {}
    for ref in request.data:
        if (symbol := ref.symbol.upper()) in sources:
            raise CommandRejected(f"{symbol} is given twice: {sources[symbol]} and {ref.source}")
        sources[symbol] = ref.source
    start_ns = parse_time(request.start, "start")
    end_ns = parse_time(request.end, "end")
    if start_ns is not None and end_ns is not None and start_ns >= end_ns:
        raise CommandRejected(f"start ({request.start}) must be before end ({request.end})")
    reader = read_source or read_ref
    bars = {ref.symbol.upper(): cut(reader(ref), start_ns, end_ns, request) for ref in request.data}
    config = BacktestConfig(
        account=request.account,
        balances=dict(request.balances),
        maker_fee_bps=request.fee_bps,
        taker_fee_bps=request.fee_bps,
        slippage_bps=request.slippage_bps,
        fill=request.fill,
        path=request.path,
    )
    spec = strategy_spec(request.strategy, request.symbol, request.params)
    return PreparedBacktest(request, config, params, spec, bars, search)


def strategy_spec(name: str, symbol: str, params: Mapping[str, Any]) -> StrategySpec:
    """The one strategy a backtest runs: a built-in's id is its name, `module:Class`'s is
    the class name."""
    return StrategySpec(
        strategy_id=name.rpartition(":")[2], name=name, symbol=symbol, params=dict(params)
    )


def check_costs(request: BacktestRequest) -> None:
    """Fees, slippage and balances that a backtest can run with."""
    for name in ("fee_bps", "slippage_bps"):
        value: Decimal = getattr(request, name)
        if not value.is_finite() or value < 0:
            raise CommandRejected(f"{name} must be a finite number of at least 0, got {value}")
    if not request.balances:
        raise CommandRejected("balances needs at least one ASSET=AMOUNT")
    for asset, amount in request.balances.items():
        if not amount.is_finite() or amount < 0:
            raise CommandRejected(f"balance of {asset} must be at least 0, got {amount}")


def read_ref(ref: DataRef) -> BarSeries:
    symbol = ref.symbol.upper()
    if ref.source.startswith(STORE_PREFIX):
        return load_stored(ref.source, symbol)
    return load_bars(Path(ref.source), symbol)


def parse_time(text: str | None, name: str) -> int | None:
    """An ISO 8601 date or time as integer nanoseconds since the epoch (UTC unless it
    carries an offset); None stays None."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CommandRejected(
            f"{name} must be an ISO 8601 date or time (2024-01-31, 2024-01-31T12:00:00Z), "
            f"got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1_000


def cut(
    series: BarSeries, start_ns: int | None, end_ns: int | None, request: BacktestRequest
) -> BarSeries:
    """The bars with start <= time < end; an error naming the data's own period when
    none are left."""
    if start_ns is None and end_ns is None:
        return series
    ts = series.ts_ns
    lo = 0 if start_ns is None else int(np.searchsorted(ts, start_ns, side="left"))
    hi = len(ts) if end_ns is None else int(np.searchsorted(ts, end_ns, side="left"))
    if hi <= lo:
        raise BarDataError(
            f"{series.source}: no bars between {request.start or 'the start'} and "
            f"{request.end or 'the end'}; the data covers {iso(series.start_ns)} .. "
            f"{iso(series.end_ns)}"
        )
    return series.slice(lo, hi)


def summarise(result: BacktestResult, symbol: str, config: BacktestConfig) -> dict[str, Any]:
    return {
        "bars": result.bars,
        "orders": result.orders,
        "denied": result.denied,
        "fills": len(result.fills),
        "fees": str(result.fees),
        "final_equity": str(result.final_equity),
        "final_position": str(result.final_positions.get(symbol, Decimal(0))),
        "final_balances": {asset: str(total) for asset, total in result.final_balances.items()},
        "start": iso(result.start_ns),
        "end": iso(result.end_ns),
        "seconds": round(result.seconds, 6),
        "bars_per_s": round(result.bars_per_s),
        "config": msgspec.to_builtins(config),
    }


def statistics(
    bars: Mapping[str, BarSeries],
    result: BacktestResult,
    balances: dict[str, Decimal],
    symbol: str,
) -> dict[str, Any] | None:
    """The run's statistics ([analytics.md](../../../docs/analytics.md)); None when they
    have no meaning (a starting equity of zero)."""
    try:
        return backtest_statistics(dict(bars), result.fills, balances, symbol).to_json()
    except ValueError:
        return None


def iso(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
