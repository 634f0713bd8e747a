"""`dca`: dollar-cost averaging. A MARKET BUY worth `quote_amount` (quote asset) on the
first bar and then every `every_bars` bars or, if `every_s` is set instead, on the first
bar at least `every_s` seconds (market time) after the previous scheduled buy. It never
sells.

The dip rule (`dip_pct` > 0) buys `dip_multiplier * quote_amount` more on a bar between
two scheduled buys whose close is at least `dip_pct` % below the reference: the price of
the last buy of either kind (`dip_ref = last_buy`) or the simple moving average of the
last `sma_period` closes, this one included (`dip_ref = sma`, O(1) per bar with a running
sum). At most one dip buy follows each scheduled buy.

The quantity is the amount divided by the bar's close, rounded down to the lot size; an
amount too small for one lot buys nothing. The schedule lives in memory: after a restart
(`on_start` again) it begins anew with a buy on the first bar.
"""

from collections import deque
from decimal import ROUND_FLOOR, Decimal
from typing import Annotated, Literal

import msgspec

from veloz.model.market import PriceBar
from veloz.strategy.base import POSITIVE, Strategy, StrategyParams, require_positive

_NS = 1_000_000_000


class RollingMean:
    """The mean of the last `period` values, O(1) per value; None until `period` values."""

    __slots__ = ("_period", "_sum", "_window")

    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError(f"a moving-average period must be at least 1, got {period}")
        self._period = period
        self._window: deque[float] = deque()
        self._sum = 0.0

    def update(self, value: float) -> float | None:
        self._window.append(value)
        self._sum += value
        if len(self._window) > self._period:
            self._sum -= self._window.popleft()
        return self._sum / self._period if len(self._window) == self._period else None


class DcaParams(StrategyParams, frozen=True, kw_only=True):
    quote_amount: Annotated[
        Decimal,
        msgspec.Meta(
            description="quote asset spent on each scheduled buy", extra_json_schema=POSITIVE
        ),
    ] = Decimal("100")
    every_bars: Annotated[
        int, msgspec.Meta(ge=0, le=10_000_000, description="bars between buys (0: use every_s)")
    ] = 1_440
    every_s: Annotated[
        int,
        msgspec.Meta(ge=0, le=31_622_400, description="seconds between buys (0: use every_bars)"),
    ] = 0
    dip_pct: Annotated[
        float,
        msgspec.Meta(ge=0, lt=100, description="buy extra this % below the reference (0: off)"),
    ] = 0.0
    dip_ref: Annotated[
        Literal["last_buy", "sma"],
        msgspec.Meta(description="the dip's reference: the last buy's price or the moving average"),
    ] = "last_buy"
    sma_period: Annotated[
        int,
        msgspec.Meta(ge=1, le=100_000, description="closes in the moving average (dip_ref sma)"),
    ] = 200
    dip_multiplier: Annotated[
        float,
        msgspec.Meta(gt=0, le=100, description="a dip buy spends this many times quote_amount"),
    ] = 1.0

    def __post_init__(self) -> None:
        require_positive(quote_amount=self.quote_amount)
        if (self.every_bars > 0) == (self.every_s > 0):
            raise ValueError(
                f"exactly one of every_bars ({self.every_bars}) and every_s ({self.every_s}) "
                "must be set (greater than 0)"
            )


class Dca(Strategy):
    name = "dca"
    description = "Buys a fixed quote amount every N bars or seconds, more on a dip."
    Params = DcaParams

    def on_start(self) -> None:
        params = self.params
        assert isinstance(params, DcaParams)
        self._p = params
        self._dip = params.dip_pct / 100
        self._dip_amount = params.quote_amount * Decimal(repr(params.dip_multiplier))
        self._sma = RollingMean(params.sma_period) if params.dip_ref == "sma" else None
        self._bars_since: int | None = None  # since the last scheduled buy
        self._scheduled_ns = 0
        self._last_buy: float | None = None
        self._dipped = False

    def on_bar(self, bar: PriceBar) -> None:
        p = self._p
        close = bar.close
        mean = self._sma.update(close) if self._sma is not None else None
        since = self._bars_since
        if since is None:
            due = True
        elif p.every_bars:
            due = since + 1 >= p.every_bars
        else:
            due = bar.ts_ns - self._scheduled_ns >= p.every_s * _NS
        if due:
            self._bars_since, self._scheduled_ns, self._dipped = 0, bar.ts_ns, False
            self._buy(p.quote_amount, close)
            return
        self._bars_since = (since or 0) + 1
        if not self._dip or self._dipped:
            return
        reference = mean if self._sma is not None else self._last_buy
        if reference is not None and close <= reference * (1 - self._dip):
            self._dipped = True
            self._buy(self._dip_amount, close)

    def _buy(self, amount: Decimal, close: float) -> None:
        lot = self.ctx.size_increment()
        qty = (amount / Decimal(repr(close)) / lot).to_integral_value(ROUND_FLOOR) * lot
        self._last_buy = close
        if qty > 0:
            self.ctx.buy_market(qty)
