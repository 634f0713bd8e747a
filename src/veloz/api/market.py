"""Market data routes: the current quote and its freshness, the book top, recent bars; the
instruments traded and their filters."""

from typing import Annotated

from litestar import Controller, get
from litestar.params import FromPath, FromQuery, QueryParameter

from veloz.api.deps import Client, Config
from veloz.api.errors import error_responses
from veloz.engine.views.instruments import Instruments
from veloz.engine.views.market import Bars, Book, MarketState


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
        return await engine_client.market(symbol or settings.symbols[0])

    @get(
        "/{symbol:str}/book",
        summary="The order book, best levels first (the sim source shows its top level)",
        responses=error_responses(404),
    )
    async def book(
        self,
        engine_client: Client,
        symbol: FromPath[str],
        depth: Annotated[int, QueryParameter(ge=1, le=1000)] = 20,
    ) -> Book:
        return await engine_client.book(symbol, depth)

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
        return await engine_client.bars(symbol, interval, limit)


class InstrumentsController(Controller):
    path = "/api/instruments"
    tags = ["market"]

    @get(
        "/",
        summary="The instruments traded and the filters an order must meet",
        responses=error_responses(),
    )
    async def instruments(self, engine_client: Client) -> Instruments:
        return await engine_client.instruments()
