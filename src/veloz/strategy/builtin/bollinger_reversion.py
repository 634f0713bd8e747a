"""`bollinger_reversion`: mean reversion on Bollinger bands. Long `qty` when a bar closes
below the lower band, flat again when a bar closes at or above the middle band (`exit =
middle`) or the upper band (`exit = upper`); never short.

The bands are the simple moving average of the last `period` closes (the middle band)
plus and minus `width` population standard deviations (ddof 0) of the same closes,
kept O(1) per bar with running sums of the closes and their squares, both taken about the
first close to keep float64 cancellation small. They are ready after `period` closes and
include the bar being judged. Nothing closes the position at the end.
"""

from collections import deque
from math import sqrt
from typing import Annotated, Literal

import msgspec

from veloz.model.market import PriceBar
from veloz.strategy.builtin.long_flat import LongFlat, LongFlatParams


class RollingBands:
    """Mean and population standard deviation of the last `period` values, O(1) per
    value. `update` returns (mean, std), or None until `period` values have been seen."""

    __slots__ = ("_period", "_shift", "_sum", "_sum_sq", "_window")

    def __init__(self, period: int) -> None:
        if period < 2:
            raise ValueError(f"a band period must be at least 2, got {period}")
        self._period = period
        self._window: deque[float] = deque()
        self._shift: float | None = None
        self._sum = 0.0
        self._sum_sq = 0.0

    def update(self, value: float) -> tuple[float, float] | None:
        if self._shift is None:
            self._shift = value
        x = value - self._shift
        window = self._window
        window.append(x)
        self._sum += x
        self._sum_sq += x * x
        if len(window) > self._period:
            old = window.popleft()
            self._sum -= old
            self._sum_sq -= old * old
        elif len(window) < self._period:
            return None
        n = self._period
        mean = self._sum / n
        variance = max(self._sum_sq / n - mean * mean, 0.0)  # rounding can dip below 0
        return mean + self._shift, sqrt(variance)


class BollingerReversionParams(LongFlatParams, frozen=True, kw_only=True):
    period: Annotated[
        int, msgspec.Meta(ge=2, le=10_000, description="closes in the moving average (bars)")
    ] = 20
    width: Annotated[
        float,
        msgspec.Meta(
            gt=0, le=10, description="band distance from the middle, in standard deviations"
        ),
    ] = 2.0
    exit: Annotated[
        Literal["middle", "upper"],
        msgspec.Meta(description="close the position at the middle or the upper band"),
    ] = "middle"


class BollingerReversion(LongFlat):
    name = "bollinger_reversion"
    description = (
        "Long on a close below the lower Bollinger band, flat at the middle or upper band."
    )
    Params = BollingerReversionParams

    def on_start(self) -> None:
        params = self.params
        assert isinstance(params, BollingerReversionParams)
        self._bands = RollingBands(params.period)
        self._width = params.width
        self._exit_upper = params.exit == "upper"

    def on_bar(self, bar: PriceBar) -> None:
        bands = self._bands.update(bar.close)
        if bands is None:
            return
        middle, std = bands
        close = bar.close
        target = middle + self._width * std if self._exit_upper else middle
        self.step(enter=close < middle - self._width * std, leave=close >= target)
