"""`grid`: resting limit orders on a ladder of prices around where the market was when the
strategy started, buying the dips and selling the rises, each fill replaced by the order
one step back on the other side.

At the first price seen (a bar's close or a quote's mid, on the tick grid) it places
`levels` BUY orders `spacing` apart below it and `levels` SELL orders above, each of
`qty`, skipping prices outside [`lower`, `upper`]. When a BUY at p fills it places a SELL
at p + spacing; when a SELL at p fills, a BUY at p - spacing. It loses money when the
price leaves the ladder and does not come back: the filled side is then held at a loss.
"""

from decimal import Decimal
from typing import Annotated

import msgspec

from veloz.model.enums import OrderSide, OrderStatus
from veloz.model.events import OrderFilled
from veloz.model.market import PriceBar, QuoteTick
from veloz.model.orders import Order
from veloz.strategy.base import (
    NON_NEGATIVE,
    POSITIVE,
    Strategy,
    StrategyParams,
    require_non_negative,
    require_positive,
)


class GridParams(StrategyParams, frozen=True, kw_only=True):
    levels: Annotated[int, msgspec.Meta(ge=1, le=100, description="orders on each side")] = 5
    spacing: Annotated[
        Decimal,
        msgspec.Meta(
            description="price distance between levels (quote asset)", extra_json_schema=POSITIVE
        ),
    ] = Decimal("100")
    qty: Annotated[
        Decimal, msgspec.Meta(description="quantity of each order", extra_json_schema=POSITIVE)
    ] = Decimal("0.001")
    lower: Annotated[
        Decimal,
        msgspec.Meta(
            description="no order below this price (0: no bound)", extra_json_schema=NON_NEGATIVE
        ),
    ] = Decimal(0)
    upper: Annotated[
        Decimal,
        msgspec.Meta(
            description="no order above this price (0: no bound)", extra_json_schema=NON_NEGATIVE
        ),
    ] = Decimal(0)

    def __post_init__(self) -> None:
        require_positive(spacing=self.spacing, qty=self.qty)
        require_non_negative(lower=self.lower, upper=self.upper)
        if self.upper and self.lower >= self.upper:
            raise ValueError(f"lower ({self.lower}) must be below upper ({self.upper})")


class Grid(Strategy):
    name = "grid"
    description = (
        "A ladder of resting limit orders around the starting price, refilled as they fill."
    )
    Params = GridParams

    def on_start(self) -> None:
        self._placed = bool(self.ctx.open_orders())  # resumed after a restart: keep them

    def on_bar(self, bar: PriceBar) -> None:
        if not self._placed:
            self._place_ladder(Decimal(repr(bar.close)))

    def on_quote(self, quote: QuoteTick) -> None:
        if not self._placed:
            self._place_ladder(quote.mid)

    def on_fill(self, fill: OrderFilled) -> None:
        pass  # the replacement waits for the order to be completely filled

    def on_order_update(self, order: Order) -> None:
        if order.status is not OrderStatus.FILLED or order.limit_price is None:
            return
        params = self._params()
        if order.side is OrderSide.BUY:
            self._place(OrderSide.SELL, order.limit_price + params.spacing)
        else:
            self._place(OrderSide.BUY, order.limit_price - params.spacing)

    def _place_ladder(self, price: Decimal) -> None:
        self._placed = True
        params = self._params()
        tick = self.ctx.price_increment()
        center = (price / tick).to_integral_value() * tick
        for level in range(1, params.levels + 1):
            self._place(OrderSide.BUY, center - level * params.spacing)
            self._place(OrderSide.SELL, center + level * params.spacing)

    def _place(self, side: OrderSide, price: Decimal) -> None:
        params = self._params()
        if price <= 0 or price < params.lower or (params.upper and price > params.upper):
            return
        self.ctx.submit_limit(side, params.qty, price)

    def _params(self) -> GridParams:
        params = self.params
        assert isinstance(params, GridParams)
        return params
