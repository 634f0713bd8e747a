"""Market data as the routes show it: a symbol's quote and its freshness, the top of
the book, recent bars."""

from decimal import Decimal

import msgspec

from veloz.market.engine import FeedStatus
from veloz.model.market import Bar

BAR_INTERVALS = ("1m",)


class MarketState(msgspec.Struct, frozen=True, kw_only=True):
    status: FeedStatus
    source: str
    symbol: str
    price: Decimal | None
    bid: Decimal | None
    ask: Decimal | None
    ts_ns: int | None
    age_ms: int | None


# A level as `[price, qty]`. A list, not a tuple: Litestar writes a tuple's schema in a
# form OpenAPI 3.1 refuses (`items` as a list), and schemathesis then cannot check it.
BookLevel = list[Decimal]


class Book(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    ts_ns: int | None
    # Best first. The order book where the source keeps one (Binance's depth stream),
    # else the quote's top level.
    bids: list[BookLevel]
    asks: list[BookLevel]
    depth: int


class Bars(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    interval: str
    bars: list[Bar]
