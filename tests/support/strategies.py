"""Strategies the tests run, importable as `tests.support.strategies:<Class>`."""

from decimal import Decimal
from typing import Annotated

import msgspec

from veloz.model.enums import OrderSide
from veloz.model.events import OrderFilled
from veloz.model.market import PriceBar, QuoteTick
from veloz.strategy.base import Strategy, StrategyParams


class QuoteBuyerParams(StrategyParams, frozen=True, kw_only=True):
    qty: Annotated[str, msgspec.Meta(description="size of each buy")] = "0.01"
    buys: Annotated[int, msgspec.Meta(ge=0, description="how many buys in all")] = 1


class QuoteBuyer(Strategy):
    """Buys `qty` at the market on quotes until it has bought `buys` times, judged by its
    own position (so a restart does not buy again; fees in the base asset shave a little
    off each buy, hence the half)."""

    name = "quote_buyer"
    Params = QuoteBuyerParams

    def on_start(self) -> None:
        self.starts = getattr(self, "starts", 0) + 1
        self.fills: list[OrderFilled] = []

    def on_quote(self, quote: QuoteTick) -> None:
        params = self.params
        assert isinstance(params, QuoteBuyerParams)
        qty = Decimal(params.qty)
        if self.ctx.open_orders() or self.ctx.position() >= qty * (params.buys - Decimal("0.5")):
            return
        self.ctx.buy_market(qty)

    def on_fill(self, fill: OrderFilled) -> None:
        self.fills.append(fill)


class Exploding(Strategy):
    """Rests a far-away bid, then raises on the next quote."""

    name = "exploding"

    def on_start(self) -> None:
        self.quotes = 0

    def on_quote(self, quote: QuoteTick) -> None:
        self.quotes += 1
        if self.quotes == 1:
            self.ctx.submit_limit(OrderSide.BUY, Decimal("0.01"), quote.bid - 1000)
        else:
            raise ZeroDivisionError("the strategy's own bug")


class Spinning(Strategy):
    """Never returns from its first quote: a loop the engine must interrupt."""

    name = "spinning"

    def on_quote(self, quote: QuoteTick) -> None:
        while True:
            pass


class Seller(Strategy):
    """Sells 1 at the market on each of its first two bars: short, then shorter."""

    name = "seller"

    def on_start(self) -> None:
        self.sold = 0

    def on_bar(self, bar: PriceBar) -> None:
        if self.sold < 2:
            self.sold += 1
            self.ctx.sell_market(Decimal(1))
