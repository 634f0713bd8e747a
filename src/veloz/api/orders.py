"""Order routes."""

import msgspec
from litestar import Controller, get

from veloz.engine.client import EngineClient, parse_status_filter
from veloz.engine.views import OrderView
from veloz.model.errors import CommandRejected


class OrdersState(msgspec.Struct, frozen=True):
    count: int
    orders: list[OrderView]


class OrdersController(Controller):
    path = "/api"
    tags = ["orders"]

    @get("/orders_state", summary="Orders the engine knows, newest first")
    async def orders_state(
        self,
        engine_client: EngineClient,
        status: str | None = None,
        symbol: str | None = None,
        limit: int | None = None,
    ) -> OrdersState:
        if limit is not None and limit < 1:
            raise CommandRejected("limit must be a positive integer")
        orders = engine_client.orders(
            parse_status_filter(status), symbol.upper() if symbol else None, limit
        )
        return OrdersState(count=len(orders), orders=[OrderView.of(o) for o in orders])
