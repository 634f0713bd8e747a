"""`rsi_reversion`: mean reversion on the relative strength index. Long `qty` when the
RSI falls below `oversold`, flat again when it rises above `overbought`; never short.

RSI(n) uses Wilder's smoothing: the first average gain and loss are the simple means of
the first n close-to-close changes, then `avg = (avg * (n - 1) + change) / n` (an EMA with
alpha 1/n), in float64. RSI = 100 - 100 / (1 + avg_gain / avg_loss): 100 when the average
loss is 0, 50 when both are 0. It is ready after n + 1 closes (n changes). On each bar with
an RSI: flat and RSI < `oversold` sends a MARKET BUY of `qty`; long and RSI > `overbought`
sends a MARKET SELL of the whole position. Nothing closes the position at the end.
"""

from typing import Annotated

import msgspec

from veloz.model.market import PriceBar
from veloz.strategy.builtin.long_flat import LongFlat, LongFlatParams


class WilderRsi:
    """RSI with Wilder's smoothing, O(1) per close. `update` returns the RSI, or None
    until `period` changes have been seen."""

    __slots__ = ("_avg_gain", "_avg_loss", "_changes", "_last", "_period", "value")

    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError(f"an RSI period must be at least 1, got {period}")
        self._period = period
        self._last: float | None = None
        self._changes = 0
        self._avg_gain = 0.0
        self._avg_loss = 0.0
        self.value: float | None = None

    def update(self, close: float) -> float | None:
        last, self._last = self._last, close
        if last is None:
            return None
        change = close - last
        gain = change if change > 0 else 0.0
        loss = -change if change < 0 else 0.0
        n = self._period
        self._changes += 1
        if self._changes <= n:  # the seed: a simple mean of the first n changes
            self._avg_gain += gain / n
            self._avg_loss += loss / n
            if self._changes < n:
                return None
        else:
            self._avg_gain = (self._avg_gain * (n - 1) + gain) / n
            self._avg_loss = (self._avg_loss * (n - 1) + loss) / n
        avg_gain, avg_loss = self._avg_gain, self._avg_loss
        if avg_loss == 0.0:
            rsi = 50.0 if avg_gain == 0.0 else 100.0
        else:
            rsi = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
        self.value = rsi
        return rsi


class RsiReversionParams(LongFlatParams, frozen=True, kw_only=True):
    period: Annotated[
        int, msgspec.Meta(ge=2, le=1_000, description="RSI period (bars), Wilder's smoothing")
    ] = 14
    oversold: Annotated[
        float, msgspec.Meta(gt=0, lt=100, description="buy when the RSI falls below this")
    ] = 30.0
    overbought: Annotated[
        float, msgspec.Meta(gt=0, lt=100, description="sell the position when the RSI exceeds this")
    ] = 70.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.oversold >= self.overbought:
            raise ValueError(
                f"oversold ({self.oversold:g}) must be below overbought ({self.overbought:g})"
            )


class RsiReversion(LongFlat):
    name = "rsi_reversion"
    description = (
        "Long when the RSI (Wilder) falls below oversold, flat when it rises above overbought."
    )
    Params = RsiReversionParams

    def on_start(self) -> None:
        params = self.params
        assert isinstance(params, RsiReversionParams)
        self._rsi = WilderRsi(params.period)
        self._oversold = params.oversold
        self._overbought = params.overbought

    def on_bar(self, bar: PriceBar) -> None:
        rsi = self._rsi.update(bar.close)
        if rsi is None:
            return
        self.step(enter=rsi < self._oversold, leave=rsi > self._overbought)
