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


class BookLevel(msgspec.Struct, frozen=True, array_like=True):
    price: Decimal
    qty: Decimal


class Book(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    ts_ns: int | None
    bids: list[BookLevel]
    asks: list[BookLevel]


class Bars(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    interval: str
    bars: list[Bar]
