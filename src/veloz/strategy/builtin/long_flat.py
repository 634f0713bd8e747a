"""What the long-or-flat signal strategies share (RSI and Bollinger mean reversion,
Donchian breakout): the quantity bought on an entry, and the move itself: buy that
quantity when flat and the entry signal holds, sell the whole position when the exit
signal holds."""

from decimal import Decimal
from typing import Annotated

import msgspec

from veloz.strategy.base import POSITIVE, Strategy, StrategyParams, require_positive


class LongFlatParams(StrategyParams, frozen=True, kw_only=True):
    qty: Annotated[
        Decimal,
        msgspec.Meta(
            description="quantity bought on an entry (base asset)", extra_json_schema=POSITIVE
        ),
    ] = Decimal("0.001")

    def __post_init__(self) -> None:
        require_positive(qty=self.qty)


class LongFlat(Strategy):
    """A strategy that holds its entry quantity or nothing."""

    def step(self, enter: bool, leave: bool) -> None:
        """Buy the entry quantity when flat and `enter`; sell all it holds when `leave`."""
        position = self.ctx.position()
        if position <= 0:
            if enter:
                params = self.params
                assert isinstance(params, LongFlatParams)
                self.ctx.buy_market(params.qty)
        elif leave:
            self.ctx.sell_market(position)
