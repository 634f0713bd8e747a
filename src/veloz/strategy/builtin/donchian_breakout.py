"""`donchian_breakout`: momentum. Long `qty` when a bar closes above the highest high of
the `entry` bars before it, flat again when a bar closes below the lowest low of the
`exit` bars before it; never short.

The channels exclude the bar being judged (a close can never exceed a high that includes
its own bar) and are kept with monotonic deques: amortised O(1) per bar. The entry needs
`entry` earlier bars, the exit `exit` earlier bars. Nothing closes the position at the
end.
"""

from collections import deque
from typing import Annotated

import msgspec

from veloz.model.market import PriceBar
from veloz.strategy.builtin.long_flat import LongFlat, LongFlatParams


class RollingExtreme:
    """The maximum (or minimum) of the last `period` values, amortised O(1) per value
    with a monotonic deque. `value` is None until `period` values have been seen."""

    __slots__ = ("_count", "_items", "_maximum", "_period")

    def __init__(self, period: int, maximum: bool) -> None:
        if period < 1:
            raise ValueError(f"a channel period must be at least 1, got {period}")
        self._period = period
        self._maximum = maximum
        self._items: deque[tuple[int, float]] = deque()  # (index, value), values monotonic
        self._count = 0

    def push(self, value: float) -> None:
        items = self._items
        if self._maximum:
            while items and items[-1][1] <= value:
                items.pop()
        else:
            while items and items[-1][1] >= value:
                items.pop()
        items.append((self._count, value))
        self._count += 1
        if items[0][0] <= self._count - 1 - self._period:
            items.popleft()

    @property
    def value(self) -> float | None:
        return self._items[0][1] if self._count >= self._period else None


class DonchianBreakoutParams(LongFlatParams, frozen=True, kw_only=True):
    entry: Annotated[
        int,
        msgspec.Meta(
            ge=1, le=10_000, description="buy on a close above the high of this many bars"
        ),
    ] = 20
    exit: Annotated[
        int,
        msgspec.Meta(
            ge=1, le=10_000, description="sell on a close below the low of this many bars"
        ),
    ] = 10


class DonchianBreakout(LongFlat):
    name = "donchian_breakout"
    description = "Long on a close above the N-bar high, flat on a close below the M-bar low."
    Params = DonchianBreakoutParams

    def on_start(self) -> None:
        params = self.params
        assert isinstance(params, DonchianBreakoutParams)
        self._high = RollingExtreme(params.entry, maximum=True)
        self._low = RollingExtreme(params.exit, maximum=False)

    def on_bar(self, bar: PriceBar) -> None:
        high, low = self._high.value, self._low.value  # of the bars before this one
        close = bar.close
        self.step(enter=high is not None and close > high, leave=low is not None and close < low)
        self._high.push(bar.high)
        self._low.push(bar.low)
