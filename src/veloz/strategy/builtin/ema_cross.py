"""`ema_cross`: follow the trend by the cross of a fast and a slow exponential moving
average, always long or short `qty` once the first cross has come.

EMA(n) has alpha = 2/(n+1), is seeded with the first close and then updated with every
close, the first included (`alpha * close + (1 - alpha) * ema`, in float64, as
NautilusTrader computes it), and is ready after n closes. From the first bar on which the
slow EMA was ready on this bar and the previous one: a cross up (`prev_fast <= prev_slow
and fast > slow`) sets the target position to +qty, a cross down (`prev_fast >=
prev_slow and fast < slow`) to -qty; each signal sends one MARKET order for target -
position, none if that is 0. There is no close-out at the end.
"""

from decimal import Decimal
from typing import Annotated

import msgspec

from veloz.model.market import PriceBar
from veloz.strategy.base import POSITIVE, Strategy, StrategyParams, require_positive

# Compared with a Decimal zero: against the int 0 each comparison converts it.
ZERO = Decimal(0)


class EmaCrossParams(StrategyParams, frozen=True, kw_only=True):
    fast: Annotated[int, msgspec.Meta(ge=1, le=10_000, description="fast EMA period (bars)")] = 10
    slow: Annotated[int, msgspec.Meta(ge=2, le=10_000, description="slow EMA period (bars)")] = 20
    qty: Annotated[
        Decimal,
        msgspec.Meta(
            description="position size held after a cross (base asset)",
            extra_json_schema=POSITIVE,
        ),
    ] = Decimal("0.001")

    def __post_init__(self) -> None:
        require_positive(qty=self.qty)
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be shorter than slow ({self.slow})")


class EmaCross(Strategy):
    name = "ema_cross"
    description = (
        "Long after the fast EMA crosses above the slow one, short after it crosses below."
    )
    Params = EmaCrossParams

    def on_start(self) -> None:
        params = self.params
        assert isinstance(params, EmaCrossParams)
        self._fast_alpha = 2.0 / (params.fast + 1)
        self._slow_alpha = 2.0 / (params.slow + 1)
        # The weight each EMA keeps of itself, `1 - alpha`: the same float on every bar,
        # worked out once.
        self._fast_keep = 1.0 - self._fast_alpha
        self._slow_keep = 1.0 - self._slow_alpha
        self._slow_period = params.slow
        self._qty = params.qty
        self._closes = 0
        self._fast = 0.0
        self._slow = 0.0

    def on_bar(self, bar: PriceBar) -> None:
        close = bar.close
        closes = self._closes + 1
        self._closes = closes
        prev_fast, prev_slow = self._fast, self._slow
        if closes == 1:
            prev_fast = prev_slow = close  # seeded, then updated with the same close
        fast = self._fast = self._fast_alpha * close + self._fast_keep * prev_fast
        slow = self._slow = self._slow_alpha * close + self._slow_keep * prev_slow
        # Ready after `slow` closes; compared once it was ready on the previous bar too.
        if closes <= self._slow_period:
            return
        if prev_fast <= prev_slow and fast > slow:
            self._target(self._qty)
        elif prev_fast >= prev_slow and fast < slow:
            self._target(-self._qty)

    def _target(self, target: Decimal) -> None:
        delta = target - self.ctx.position()
        if delta > ZERO:
            self.ctx.buy_market(delta)
        elif delta < ZERO:
            self.ctx.sell_market(-delta)
