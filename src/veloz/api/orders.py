"""Order routes: place, cancel, cancel all, and read orders, order events and fills."""

from decimal import Decimal
from typing import Annotated, Any, TypeVar

import msgspec
import structlog
from litestar import Controller, Response, get, post
from litestar.params import FromQuery, QueryParameter

from veloz.api.body import (
    AnyRequest,
    body_operation,
    decimal,
    object_schema,
    read_fields,
    string,
)
from veloz.api.deps import Client
from veloz.api.errors import MAX_TS_NS, error_responses
from veloz.api.json import NumberJSONResponse
from veloz.engine.client import parse_status_filter
from veloz.engine.views import OrderView
from veloz.model.commands import parse_cancel_order, parse_submit_order
from veloz.model.enums import LiquiditySide, OrderSide, OrderStatus
from veloz.model.errors import CommandRejected
from veloz.model.identifiers import CLIENT_ORDER_ID_PATTERN
from veloz.runtime.live import OrderAck

_COID = string("^[A-Za-z0-9._:/-]{1,36}$", pattern=CLIENT_ORDER_ID_PATTERN.pattern)
ORDER_BODY = object_schema(
    ["side", "symbol", "qty"],
    side=string("BUY or SELL", enum=["BUY", "SELL"]),
    symbol=string("e.g. BTCUSDT"),
    qty=decimal("quantity in base units"),
    price=decimal("limit price; omit for MARKET"),
    type=string("LIMIT (default) or MARKET", enum=["LIMIT", "MARKET"]),
    time_in_force=string(
        "GTC (LIMIT default), IOC (MARKET default) or FOK", enum=["GTC", "IOC", "FOK"]
    ),
    client_order_id=_COID,
    strategy_id=string("free text, 1-64 characters"),
)
CANCEL_BODY = object_schema(
    ["client_order_id"], client_order_id=_COID, symbol=string("optional check")
)
CANCEL_ALL_BODY = object_schema([], symbol=string("only this symbol's orders"))


class OrderAnswer(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    client_order_id: str
    status: OrderStatus
    venue_order_id: str | None

    @classmethod
    def of(cls, ack: OrderAck) -> "OrderAnswer":
        return cls(
            ok=True,
            client_order_id=ack.client_order_id,
            status=ack.status,
            venue_order_id=ack.venue_order_id,
        )


class CancelAllAnswer(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    count: int
    client_order_ids: list[str]


class OrdersState(msgspec.Struct, frozen=True):
    count: int
    orders: list[OrderView]


class OrderEventItem(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    ts_ns: int
    event: str
    client_order_id: str
    status: OrderStatus | None
    data: dict[str, Any]


class OrderEvents(msgspec.Struct, frozen=True):
    items: list[OrderEventItem]


class Trade(msgspec.Struct, frozen=True, kw_only=True):
    trade_id: str
    client_order_id: str
    symbol: str
    side: OrderSide
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: LiquiditySide
    ts_ns: int


class Trades(msgspec.Struct, frozen=True):
    count: int
    trades: list[Trade]


HISTORY_HEADER = "X-VeloZ-History"
_Listing = TypeVar("_Listing", OrdersState, Trades)


class OrdersController(Controller):
    path = "/api"
    tags = ["orders"]

    @post(
        "/order",
        status_code=200,
        summary="Place an order; answered once it is durable in the journal",
        operation_class=body_operation(ORDER_BODY),
        responses=error_responses(409, 413, 422, 423, 429, 503),
    )
    async def place(self, request: AnyRequest, engine_client: Client) -> OrderAnswer:
        command = parse_submit_order(await read_fields(request))
        structlog.contextvars.bind_contextvars(
            client_order_id=command.client_order_id, symbol=command.symbol
        )
        ack = await engine_client.submit_order(command)
        return OrderAnswer.of(ack)

    @post(
        "/cancel",
        status_code=200,
        summary="Cancel an order",
        operation_class=body_operation(CANCEL_BODY),
        responses=error_responses(404, 409, 413, 503),
    )
    async def cancel(self, request: AnyRequest, engine_client: Client) -> OrderAnswer:
        ack = await engine_client.cancel_order(parse_cancel_order(await read_fields(request)))
        return OrderAnswer.of(ack)

    @post(
        "/cancel_all",
        status_code=200,
        summary="Cancel every open order (allowed in READONLY and MAINTENANCE)",
        operation_class=body_operation(CANCEL_ALL_BODY, required=False),
        responses=error_responses(413, 503),
    )
    async def cancel_all(self, request: AnyRequest, engine_client: Client) -> CancelAllAnswer:
        fields = await read_fields(request, required=False)
        unknown = sorted(set(fields) - {"symbol"})
        if unknown:
            raise CommandRejected(f"unknown field(s): {', '.join(unknown)}")
        symbol = fields.get("symbol")
        if symbol is not None and not isinstance(symbol, str):
            raise CommandRejected("symbol must be a string")
        acks = await engine_client.cancel_all(symbol.upper() if symbol else None)
        ids = [ack.client_order_id for ack in acks]
        return CancelAllAnswer(ok=True, count=len(ids), client_order_ids=ids)

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
        found = await engine_client.order_history(
            parse_status_filter(status), symbol.upper() if symbol else None, limit, before
        )
        orders = [OrderView.of(o) for o in found.items]
        return _with_history_header(OrdersState(count=len(orders), orders=orders), found.complete)

    @get("/order_state", summary="One order", responses=error_responses(404))
    async def order_state(
        self, engine_client: Client, client_order_id: FromQuery[str]
    ) -> OrderView:
        order = engine_client.order(client_order_id)
        if order is None:
            raise CommandRejected(f"no order {client_order_id}", code="not_found")
        return OrderView.of(order)

    @get("/orders", summary="Recent order events, newest first", responses=error_responses())
    async def orders(
        self, engine_client: Client, limit: Annotated[int, QueryParameter(ge=1, le=10_000)] = 100
    ) -> OrderEvents:
        items = [
            OrderEventItem(
                seq=message.seq,
                ts_ns=message.event.ts_ns,
                event=type(message.event).__name__,
                client_order_id=getattr(message.event, "client_order_id", ""),
                status=message.order.status if message.order else None,
                data=msgspec.structs.asdict(message.event),
            )
            for message in engine_client.engine.activity.recent_events(limit)
        ]
        return OrderEvents(items=items)

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
        found = await engine_client.trade_history(limit, symbol.upper() if symbol else None, before)
        trades = [msgspec.convert(f, Trade, from_attributes=True) for f in found.items]
        return _with_history_header(Trades(count=len(trades), trades=trades), found.complete)


def _with_history_header(body: _Listing, complete: bool) -> Response[_Listing]:
    """Say so when the history store could not be asked and only memory answered."""
    headers = {} if complete else {HISTORY_HEADER: "unavailable"}
    return NumberJSONResponse(body, headers=headers)
