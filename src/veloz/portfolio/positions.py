"""Positions: per-symbol quantity, cost basis and PnL from trading, by the average-cost method.

A position is driven by the net flows of each fill: what the fill adds to the base asset
and to the quote asset after a fee charged in either of them. Because realised PnL is
booked from those net flows, it is net of fees, and for a symbol that started flat
`sum(quote flows) + qty * mark == realized_pnl + unrealized_pnl(mark)` at every step.
"""

from decimal import Decimal

import msgspec

from veloz.model.enums import OrderSide
from veloz.model.events import OrderFilled
from veloz.model.instruments import Instrument

ZERO = Decimal(0)
# Read once for the hot paths: on Python 3.11 reading a member off its enum class
# (`OrderSide.BUY`) takes the slow attribute path of a class with `__getattr__`.
BUY = OrderSide.BUY


def fill_flows(instrument: Instrument, fill: OrderFilled) -> tuple[Decimal, Decimal]:
    """`(base_delta, quote_delta)`: what `fill` adds to each asset of `instrument`, after a
    fee charged in either. A fee in a third asset (e.g. BNB) touches neither."""
    qty, fee_asset = fill.qty, fill.fee_asset
    notional = qty * fill.price
    if fill.side is BUY:
        base_delta, quote_delta = qty, -notional
    else:
        base_delta, quote_delta = -qty, notional
    if fee_asset == instrument.base_asset:
        base_delta -= fill.fee
    elif fee_asset == instrument.quote_asset:
        quote_delta -= fill.fee
    return base_delta, quote_delta


def fee_in_quote(instrument: Instrument, fill: OrderFilled) -> Decimal:
    """The fee's value in the quote asset; a base fee is valued at the fill price. A fee in a
    third asset has no price in this symbol and counts as zero here (the balances still
    pay it)."""
    if fill.fee_asset == instrument.quote_asset:
        return fill.fee
    if fill.fee_asset == instrument.base_asset:
        return fill.fee * fill.price
    return ZERO


class Position(msgspec.Struct, gc=False, kw_only=True):
    """What trading one symbol has left us with.

    `qty` is signed (negative when short). `cost` is the quote cost basis of the open
    quantity and carries the same sign as `qty` (a short's basis is minus its proceeds), so
    `qty * mark - cost` is the unrealised PnL on either side. `fees` is the quote value of
    the fees charged in the base or quote asset.
    """

    symbol: str
    qty: Decimal = ZERO
    cost: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO

    @property
    def avg_price(self) -> Decimal | None:
        return None if self.qty == 0 else self.cost / self.qty

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        return self.qty * mark - self.cost

    def notional(self, mark: Decimal) -> Decimal:
        """Signed value at `mark` (negative when short), as Binance reports it."""
        return self.qty * mark

    def apply_fill(self, instrument: Instrument, fill: OrderFilled) -> None:
        base_delta, quote_delta = fill_flows(instrument, fill)
        self.apply_flows(base_delta, quote_delta)
        self.fees += fee_in_quote(instrument, fill)

    def apply_flows(self, base_delta: Decimal, quote_delta: Decimal) -> None:
        """Book a trade's net flows: extend the position, reduce it, or close and flip it."""
        qty = self.qty
        if base_delta == ZERO:
            # Nothing opened or closed (a base fee ate the whole fill): the flow is spent.
            self.realized_pnl += quote_delta
        elif qty == ZERO or (qty > ZERO) == (base_delta > ZERO):
            self.qty = qty + base_delta
            self.cost -= quote_delta
        else:
            self._reduce(base_delta, quote_delta)

    def _reduce(self, base_delta: Decimal, quote_delta: Decimal) -> None:
        """A flow against the position: reduce it, close it, or close it and open the
        other side with the rest (a flip)."""
        qty, cost = self.qty, self.cost
        held, flowed = abs(qty), abs(base_delta)
        if flowed <= held:
            # The whole flow closes: its share of the cost is exact when it is the whole
            # position (cost left at exactly zero), and the flow itself is realised.
            closed_cost = cost if flowed == held else cost * flowed / held
            self.realized_pnl += quote_delta - closed_cost
            self.cost = cost - closed_cost
            self.qty = qty + base_delta  # opposite signs: |qty| less the flow
            return
        # A flip: the whole position closes at its share of the flow, and the remainder
        # opens the other side at the rest of the flow.
        closing_flow = quote_delta * held / flowed
        self.realized_pnl += closing_flow - cost
        self.qty = qty + base_delta  # the remainder, with the flow's sign
        self.cost = -(quote_delta - closing_flow)
