"""Account views: balances and positions as they are reported outward."""

from decimal import Decimal

import msgspec


class Balance(msgspec.Struct, gc=False, kw_only=True):
    """An asset balance. `locked` is held for open orders; `free` can be spent."""

    asset: str
    free: Decimal
    locked: Decimal = Decimal(0)

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


class PositionView(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    symbol: str
    qty: Decimal
    avg_price: Decimal | None
    mark_price: Decimal | None
    notional: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    fees: Decimal
