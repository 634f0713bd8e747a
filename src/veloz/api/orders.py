"""Order routes: place, cancel, cancel all, and read orders, order events and fills."""

from typing import Annotated, TypeVar

from litestar import Controller, Response, get, post
from litestar.params import FromQuery, QueryParameter

from veloz.api.body import AnyRequest, body_operation, read_fields
from veloz.api.deps import Client
from veloz.api.errors import MAX_TS_NS, error_responses
from veloz.api.json import NumberJSONResponse
from veloz.api.order_entry import OrderEntry, place_order
from veloz.engine.views.orders import (
    CancelAllAnswer,
    OrderAnswer,
    OrderEvents,
    OrdersState,
    OrderView,
    Trades,
    WithHistory,
)
from veloz.model.commands import (
    CancelAllOrders,
    CancelOrder,
    SubmitOrder,
    parse_cancel_all_orders,
    parse_cancel_order,
)
from veloz.model.queries import OrderQuery, TradeQuery, parse_status_filter

HISTORY_HEADER = "X-VeloZ-History"
_Listing = TypeVar("_Listing", OrdersState, Trades)


class OrdersController(Controller):
    path = "/api"
    tags = ["orders"]

    @post(
        "/order",
        status_code=200,
        summary="Place an order; answered once it is durable in the journal",
        operation_class=body_operation(SubmitOrder),
        responses=error_responses(409, 413, 422, 423, 429, 503),
        middleware=[OrderEntry()],
    )
    async def place(self, request: AnyRequest, engine_client: Client) -> OrderAnswer:
        # A JSON body is answered by the route's own middleware (`order_entry`) and never
        # reaches here; a form does.
        return await place_order(engine_client, await read_fields(request))

    @post(
        "/cancel",
        status_code=200,
        summary="Cancel an order",
        operation_class=body_operation(CancelOrder),
        responses=error_responses(404, 409, 413, 503),
    )
    async def cancel(self, request: AnyRequest, engine_client: Client) -> OrderAnswer:
        command = parse_cancel_order(await read_fields(request))
        return OrderAnswer.of(await engine_client.cancel_order(command))

    @post(
        "/cancel_all",
        status_code=200,
        summary="Cancel every open order (allowed in READONLY and MAINTENANCE)",
        operation_class=body_operation(CancelAllOrders, required=False),
        responses=error_responses(413, 503),
    )
    async def cancel_all(self, request: AnyRequest, engine_client: Client) -> CancelAllAnswer:
        command = parse_cancel_all_orders(await read_fields(request, required=False))
        ids = [view.client_order_id for view in await engine_client.cancel_all(command)]
        return CancelAllAnswer(count=len(ids), client_order_ids=ids)

    @get(
        "/orders_state",
        summary="Orders newest first: live ones from the engine, older final ones from the "
        "history store",
        responses=error_responses(),
    )
    async def orders_state(
        self,
        engine_client: Client,
        status: Annotated[str | None, QueryParameter(description="open, final or a status")] = None,
        symbol: FromQuery[str | None] = None,
        limit: Annotated[int | None, QueryParameter(ge=1, le=100_000)] = None,
        before: Annotated[
            int | None, QueryParameter(description="created before this ts_ns", ge=0, le=MAX_TS_NS)
        ] = None,
    ) -> Response[OrdersState]:
        query = OrderQuery(
            statuses=parse_status_filter(status),
            symbol=symbol.upper() if symbol else None,
            limit=limit,
            before_ts_ns=before,
        )
        return _with_history_header(await engine_client.order_history(query))

    @get("/order_state", summary="One order", responses=error_responses(404))
    async def order_state(
        self, engine_client: Client, client_order_id: FromQuery[str]
    ) -> OrderView:
        return await engine_client.order(client_order_id)

    @get("/orders", summary="Recent order events, newest first", responses=error_responses())
    async def orders(
        self, engine_client: Client, limit: Annotated[int, QueryParameter(ge=1, le=10_000)] = 100
    ) -> OrderEvents:
        return await engine_client.order_events(limit)

    @get(
        "/trades",
        summary="Fills newest first: recent ones from the engine, older ones from the "
        "history store",
        responses=error_responses(),
    )
    async def trades(
        self,
        engine_client: Client,
        limit: Annotated[int, QueryParameter(ge=1, le=1_000)] = 20,
        symbol: FromQuery[str | None] = None,
        before: Annotated[
            int | None, QueryParameter(description="filled before this ts_ns", ge=0, le=MAX_TS_NS)
        ] = None,
    ) -> Response[Trades]:
        query = TradeQuery(
            symbol=symbol.upper() if symbol else None, limit=limit, before_ts_ns=before
        )
        return _with_history_header(await engine_client.trade_history(query))


def _with_history_header(found: WithHistory[_Listing]) -> Response[_Listing]:
    """Say so when the history store could not be asked and only memory answered."""
    headers = {} if found.complete else {HISTORY_HEADER: "unavailable"}
    return NumberJSONResponse(found.answer, headers=headers)
