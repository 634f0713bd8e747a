"""The equity curve of a backtest, one sample per bar of the traded symbol, rebuilt from the
bars, the starting balances and the fills, so the bar loop records nothing for it.

Sample 0 is the starting capital: the starting balances valued at the first bar's close,
before any fill. Sample i > 0 is the equity at bar i's close, after every fill up to and
including bar i's: each balance (free + locked, as `Portfolio.equity` counts them) valued in
the traded symbol's quote asset. An asset is valued at the close of its symbol against that
quote (BTC at BTCUSDT's) at or before the sample's time, or at that symbol's first close
before it has traded. An asset without such a symbol is left out, as the portfolio leaves
out assets it has no mark for. Margin accounts are the same sum: the base balance goes
negative when short.

Balances move by each fill's net flows in Decimal; the curve itself is float64 (it feeds
statistics, not accounting). `exposed[i]` is whether any symbol's position (from the
fills, average cost as the portfolio books it) is not flat after bar i's fills.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from veloz.backtest.data import BarSeries
from veloz.backtest.round_trips import Fill, check_fill_order, fill_flows
from veloz.model.instruments import split_symbol

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class EquityCurve:
    ts_ns: NDArray[np.int64]  # the traded symbol's bar times
    equity: NDArray[np.float64]  # in the quote asset
    exposed: NDArray[np.bool_]  # a position is open after the bar's fills
    quote_asset: str

    def __post_init__(self) -> None:
        n = len(self.ts_ns)
        if n == 0 or len(self.equity) != n or len(self.exposed) != n:
            raise ValueError("an equity curve needs at least one sample, as many values as times")


def equity_curve(
    bars: Mapping[str, BarSeries],
    fills: Sequence[Fill],
    balances: Mapping[str, Decimal],
    symbol: str | None = None,
) -> EquityCurve:
    """The curve sampled at the bars of `symbol` (the first of `bars` if not given, the
    traded one in a backtest). `balances` are the starting balances."""
    if not bars:
        raise ValueError("an equity curve needs bars")
    symbol = next(iter(bars)) if symbol is None else symbol
    if symbol not in bars:
        raise ValueError(f"no bars for {symbol}")
    check_fill_order(fills)
    quote = split_symbol(symbol)[1]
    times = bars[symbol].ts_ns

    assets = sorted(set(balances) | {a for f in fills for a in split_symbol(f.symbol)})
    column = {asset: k for k, asset in enumerate(assets)}
    # states[k]: the balances after the first k fills; open_after[k]: a position is open.
    states = np.empty((len(fills) + 1, len(assets)), dtype=np.float64)
    running = {asset: Decimal(balances.get(asset, ZERO)) for asset in assets}
    positions: dict[str, Decimal] = {}
    open_after = np.zeros(len(fills) + 1, dtype=np.bool_)
    states[0] = [float(running[a]) for a in assets]
    for k, fill in enumerate(fills, start=1):
        base, fill_quote = split_symbol(fill.symbol)
        base_delta, quote_delta = fill_flows(fill)
        running[base] += base_delta
        running[fill_quote] += quote_delta
        positions[fill.symbol] = positions.get(fill.symbol, ZERO) + base_delta
        states[k] = states[k - 1]
        states[k, column[base]] = float(running[base])
        states[k, column[fill_quote]] = float(running[fill_quote])
        open_after[k] = any(q != ZERO for q in positions.values())

    fill_ts = np.fromiter((f.ts_ns for f in fills), dtype=np.int64, count=len(fills))
    done = np.searchsorted(fill_ts, times, side="right")  # fills up to each bar
    equity = np.zeros(len(times), dtype=np.float64)
    for asset in assets:
        price = _price(asset, quote, bars, times)
        if price is not None:
            held = states[done, column[asset]]
            held[0] = states[0, column[asset]]  # sample 0: the starting capital
            equity += held * price
    return EquityCurve(
        ts_ns=np.asarray(times, dtype=np.int64),
        equity=equity,
        exposed=open_after[done],
        quote_asset=quote,
    )


def _price(
    asset: str, quote: str, bars: Mapping[str, BarSeries], times: NDArray[np.int64]
) -> NDArray[np.float64] | None:
    """`asset`'s price in `quote` at each of `times`, or None if no bars give it."""
    if asset == quote:
        return np.ones(len(times), dtype=np.float64)
    series = bars.get(asset + quote)
    if series is None:
        return None
    at = np.searchsorted(series.ts_ns, times, side="right") - 1
    return np.asarray(series.close[np.maximum(at, 0)], dtype=np.float64)
