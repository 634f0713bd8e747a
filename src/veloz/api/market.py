"""Market data routes: the current quote and its freshness, the book top, recent bars."""

from decimal import Decimal
from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.params import FromPath, FromQuery, QueryParameter

from veloz.api.deps import Client, Config
from veloz.api.errors import error_responses
from veloz.model.errors import CommandRejected
from veloz.model.market import Bar

BAR_INTERVALS = ("1m",)


class MarketState(msgspec.Struct, frozen=True, kw_only=True):
    status: str
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


def _known(engine_client: Client, symbol: str) -> str:
    """The symbol a market route addresses; one that is not traded is a missing resource."""
    symbol = symbol.upper()
    instruments = engine_client.engine.instruments
    if symbol not in instruments:
        known = ", ".join(sorted(instruments))
        raise CommandRejected(f"no market {symbol}; trading {known}", code="not_found")
    return symbol


class MarketController(Controller):
    path = "/api/market"
    tags = ["market"]

    @get(
        "/",
        summary="The current quote of a symbol and whether it is fresh",
        responses=error_responses(404),
    )
    async def market(
        self, engine_client: Client, settings: Config, symbol: FromQuery[str | None] = None
    ) -> MarketState:
        symbol = _known(engine_client, symbol or settings.symbols[0])
        engine = engine_client.engine
        now = engine.clock.time_ns()
        quote = engine.market.quote(symbol)
        age = engine.market.age_ns(symbol, now)
        return MarketState(
            status=engine.market.status(symbol, now),
            source=settings.market_source,
            symbol=symbol,
            price=quote.mid if quote else None,
            bid=quote.bid if quote else None,
            ask=quote.ask if quote else None,
            ts_ns=quote.ts_ns if quote else None,
            age_ms=None if age is None else age // 1_000_000,
        )

    @get(
        "/{symbol:str}/book",
        summary="Top of book (the sim source shows one level)",
        responses=error_responses(404),
    )
    async def book(self, engine_client: Client, symbol: FromPath[str]) -> Book:
        symbol = _known(engine_client, symbol)
        quote = engine_client.engine.market.quote(symbol)
        if quote is None:
            return Book(symbol=symbol, ts_ns=None, bids=[], asks=[])
        return Book(
            symbol=symbol,
            ts_ns=quote.ts_ns,
            bids=[BookLevel(quote.bid, quote.bid_size)],
            asks=[BookLevel(quote.ask, quote.ask_size)],
        )

    @get(
        "/{symbol:str}/bars",
        summary="Recent bars, oldest first, the open bar last",
        responses=error_responses(404),
    )
    async def bars(
        self,
        engine_client: Client,
        symbol: FromPath[str],
        interval: FromQuery[str] = "1m",
        limit: Annotated[int, QueryParameter(ge=1, le=1440)] = 100,
    ) -> Bars:
        symbol = _known(engine_client, symbol)
        if interval not in BAR_INTERVALS:
            raise CommandRejected(f"interval must be one of {', '.join(BAR_INTERVALS)}")
        return Bars(
            symbol=symbol, interval=interval, bars=engine_client.engine.market.bars(symbol, limit)
        )
