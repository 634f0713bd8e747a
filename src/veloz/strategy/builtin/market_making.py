"""`market_making`: a resting BUY and a resting SELL of `qty` around the mid, skewed
against the inventory, refreshed when the mid moves or the quotes grow old, within a
position limit.

The mid is a quote's mid (live) or a bar's close (backtests, which have no quotes). With
q = position / `max_position` (between -1 and 1), the centre is `mid * (1 - skew_bps * q /
10,000)`: when long the quotes move down, so the SELL is likelier to trade and the BUY
less. The BUY is at `centre * (1 - spread_bps / 20,000)` rounded down to the tick, the
SELL at `centre * (1 + spread_bps / 20,000)` rounded up (the full spread is `spread_bps`).
Neither crosses the mid: a BUY skewed up to it is kept a tick below it, a SELL a tick
above, so both rest as maker orders.
A side is left out when its fill would take the position past `max_position` either way;
with `short` false, the SELL is only placed when the strategy holds `qty` of its own.

The quotes are replaced (its open orders cancelled, new ones placed) when: none are out
yet, one of them traded (the inventory changed), the mid moved more than `refresh_bps`
from the mid they were placed at, or they are `max_age_s` old (market time; 0: never).
"""

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Annotated

import msgspec

from veloz.model.enums import OrderSide
from veloz.model.events import OrderFilled
from veloz.model.market import PriceBar, QuoteTick
from veloz.strategy.base import POSITIVE, Strategy, StrategyParams, require_positive

_NS = 1_000_000_000


class MarketMakingParams(StrategyParams, frozen=True, kw_only=True):
    spread_bps: Annotated[
        float,
        msgspec.Meta(
            gt=0, le=5_000, description="distance from the BUY to the SELL (bps of the mid)"
        ),
    ] = 20.0
    qty: Annotated[
        Decimal,
        msgspec.Meta(description="quantity of each quote (base asset)", extra_json_schema=POSITIVE),
    ] = Decimal("0.001")
    max_position: Annotated[
        Decimal,
        msgspec.Meta(
            description="largest position either way (base asset); a side is not quoted past it",
            extra_json_schema=POSITIVE,
        ),
    ] = Decimal("0.01")
    skew_bps: Annotated[
        float,
        msgspec.Meta(
            ge=0, le=5_000, description="shift of both quotes at full inventory (bps of the mid)"
        ),
    ] = 10.0
    refresh_bps: Annotated[
        float,
        msgspec.Meta(
            ge=0, le=5_000, description="replace the quotes when the mid moves more than this"
        ),
    ] = 5.0
    max_age_s: Annotated[
        int,
        msgspec.Meta(
            ge=0, le=86_400, description="replace the quotes this old (market time; 0: never)"
        ),
    ] = 300
    short: Annotated[
        bool, msgspec.Meta(description="may go short (margin); if false, sells only what it holds")
    ] = False

    def __post_init__(self) -> None:
        require_positive(qty=self.qty, max_position=self.max_position)
        if self.qty > self.max_position:
            raise ValueError(f"qty ({self.qty}) must not exceed max_position ({self.max_position})")


class MarketMaking(Strategy):
    name = "market_making"
    description = "Quotes both sides around the mid with a spread, skewed by inventory, refreshed."
    Params = MarketMakingParams

    def on_start(self) -> None:
        params = self.params
        assert isinstance(params, MarketMakingParams)
        self._p = params
        self._half = Decimal(repr(params.spread_bps)) / 20_000
        self._skew = Decimal(repr(params.skew_bps)) / 10_000
        self._refresh = params.refresh_bps / 10_000
        self._max_age_ns = params.max_age_s * _NS
        self._quoted_mid: float | None = None
        self._quoted_ns = 0
        self._dirty = True  # quote at the first price seen; a resume replaces what is open

    def on_bar(self, bar: PriceBar) -> None:
        self._maybe_quote(bar.close)

    def on_quote(self, quote: QuoteTick) -> None:
        self._maybe_quote(float(quote.mid))

    def on_fill(self, fill: OrderFilled) -> None:
        self._dirty = True  # the inventory changed: quote again, skewed anew

    def _maybe_quote(self, mid: float) -> None:
        now = self.ctx.time_ns()
        quoted = self._quoted_mid
        if not (
            self._dirty
            or quoted is None
            or abs(mid - quoted) > self._refresh * quoted
            or (self._max_age_ns and now - self._quoted_ns >= self._max_age_ns)
        ):
            return
        self._dirty = False
        self._quoted_mid, self._quoted_ns = mid, now
        for order in self.ctx.open_orders():
            self.ctx.cancel(order.client_order_id)
        p = self._p
        position = self.ctx.position()
        mid_d = Decimal(repr(mid))
        centre = mid_d * (1 - self._skew * position / p.max_position)
        tick = self.ctx.price_increment()
        if position + p.qty <= p.max_position:
            bid = (centre * (1 - self._half) / tick).to_integral_value(ROUND_FLOOR) * tick
            if bid >= mid_d:  # skewed through the mid: keep it resting, a tick below
                bid = (mid_d / tick).to_integral_value(ROUND_CEILING) * tick - tick
            if bid > 0:
                self.ctx.submit_limit(OrderSide.BUY, p.qty, bid)
        if position - p.qty >= (-p.max_position if p.short else 0):
            ask = (centre * (1 + self._half) / tick).to_integral_value(ROUND_CEILING) * tick
            if ask <= mid_d:  # skewed through the mid: keep it resting, a tick above
                ask = (mid_d / tick).to_integral_value(ROUND_FLOOR) * tick + tick
            self.ctx.submit_limit(OrderSide.SELL, p.qty, ask)
