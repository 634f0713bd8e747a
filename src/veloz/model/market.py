"""Market data: quotes (top of book), trades and bars. Prices and sizes are exact decimals."""

from decimal import Decimal

import msgspec

from veloz.model.enums import OrderSide


class QuoteTick(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    symbol: str
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal
    ts_ns: int

    @property
    def mid(self) -> Decimal:
        if self.bid == self.ask:
            # No spread (a backtest's bar price, a locked book): the price itself, as the
            # division below would give it, without the arithmetic.
            return self.bid
        return (self.bid + self.ask) / 2


class TradeTick(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    symbol: str
    trade_id: str
    price: Decimal
    size: Decimal
    aggressor: OrderSide
    ts_ns: int


class Bar(msgspec.Struct, gc=False, kw_only=True):
    """An OHLCV bar; `ts_ns` is the open time, `closed` says whether it is final."""

    symbol: str
    interval: str
    ts_ns: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    closed: bool = False


class PriceBar(msgspec.Struct, gc=False, frozen=True):
    """A bar as strategies and indicators see it: floats, because signals need speed, not
    exactness. Orders and fills stay exact decimals. `ts_ns` is the bar's time.

    Positional arguments are allowed (in field order) for the backtest's bar loop, which
    makes one per bar: keyword parsing costs a third more. Everywhere else names them."""

    symbol: str
    ts_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float
