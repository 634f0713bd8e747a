"""The instruments the engine trades, with the filters an order is checked against: what an
order ticket validates before sending."""

from decimal import Decimal

import msgspec

from veloz.model.instruments import Instrument


class InstrumentView(msgspec.Struct, frozen=True, kw_only=True):
    """A symbol and its filters, named as `Instrument` names them. Every decimal keeps its
    exact digits (a filter is not a price or a quantity of anything)."""

    symbol: str
    # "TRADING", or why the venue takes no orders ("HALT", "BREAK"...).
    status: str
    trading: bool
    base_asset: str
    quote_asset: str
    # PRICE_FILTER: a limit price is a multiple of the increment, within the bounds if set.
    price_increment: Decimal
    min_price: Decimal | None
    max_price: Decimal | None
    # LOT_SIZE: a quantity is a multiple of the increment within [min_qty, max_qty].
    size_increment: Decimal
    min_qty: Decimal
    max_qty: Decimal
    # MARKET_LOT_SIZE: a market order's own bounds, where the venue sets them.
    market_min_qty: Decimal | None
    market_max_qty: Decimal | None
    # NOTIONAL: price x qty bounds; for a market order at the reference price when it
    # applies to market orders.
    min_notional: Decimal
    max_notional: Decimal | None
    min_notional_applies_to_market: bool
    max_notional_applies_to_market: bool
    # Decimal places of the base and quote assets' amounts (balances, fees).
    base_asset_precision: int
    quote_asset_precision: int

    @classmethod
    def of(cls, instrument: Instrument) -> "InstrumentView":
        return msgspec.convert(instrument, cls, from_attributes=True)


class Instruments(msgspec.Struct, frozen=True, kw_only=True):
    count: int
    # Sorted by symbol.
    instruments: list[InstrumentView]
