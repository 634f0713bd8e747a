"""Orders and fills as every transport shows them: one order view, one fill view, and
the listings and answers built from them."""

from decimal import Decimal
from typing import Any, Generic, TypeVar

import msgspec

from veloz.engine.bus import Journaled
from veloz.model.enums import LiquiditySide, OrderSide, OrderStatus, OrderType, TimeInForce
from veloz.model.events import OrderFilled
from veloz.model.orders import Order

T = TypeVar("T")


class OrderView(msgspec.Struct, frozen=True, kw_only=True, rename={"order_type": "type"}):
    """An order's fields as `api.md` lists them: the model's names, less its book-keeping
    (running quote total, trade ids, reference price)."""

    client_order_id: str
    venue_order_id: str | None
    symbol: str
    side: OrderSide
    order_type: OrderType
    time_in_force: TimeInForce
    order_qty: Decimal
    limit_price: Decimal | None
    status: OrderStatus
    executed_qty: Decimal
    avg_price: Decimal | None
    fee: Decimal
    fee_asset: str | None
    reason: str
    strategy_id: str | None
    created_ts_ns: int
    last_ts_ns: int

    @classmethod
    def of(cls, order: Order) -> "OrderView":
        return msgspec.convert(order, cls, from_attributes=True)


class OrderAnswer(OrderView, frozen=True, kw_only=True):
    """What placing or cancelling an order answers over HTTP: the order as it stands once
    the request is durable, with the `ok` every command answer carries."""

    ok: bool = True

    @classmethod
    def of(cls, order: Order | OrderView) -> "OrderAnswer":
        if type(order) is OrderView:
            # The view's fields are the answer's and already typed: copied without the
            # conversion's checks, about half its cost on every order placed.
            return cls(**msgspec.structs.asdict(order))
        return msgspec.convert(order, cls, from_attributes=True)


class Placement(msgspec.Struct, frozen=True, kw_only=True):
    """A submission's outcome: the order, and whether the request created it (False: the
    same request again, answered idempotently, nothing new sent)."""

    order: OrderView
    created: bool


class CancelAllAnswer(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool = True
    count: int
    client_order_ids: list[str]


class OrdersState(msgspec.Struct, frozen=True):
    count: int
    orders: list[OrderView]


class FillView(msgspec.Struct, frozen=True, kw_only=True):
    """A fill as `/api/trades` and the `fill` stream events show it."""

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

    @classmethod
    def of(cls, fill: OrderFilled) -> "FillView":
        return msgspec.convert(fill, cls, from_attributes=True)


class Trades(msgspec.Struct, frozen=True):
    count: int
    trades: list[FillView]


class OrderEventView(msgspec.Struct, frozen=True, kw_only=True):
    """One journaled order event (`/api/orders`): its sequence, kind and fields, and the
    order's status right after it."""

    seq: int
    ts_ns: int
    event: str
    client_order_id: str
    status: OrderStatus | None
    data: dict[str, Any]

    @classmethod
    def of(cls, message: Journaled) -> "OrderEventView":
        return cls(
            seq=message.seq,
            ts_ns=message.event.ts_ns,
            event=type(message.event).__name__,
            client_order_id=getattr(message.event, "client_order_id", ""),
            status=message.order.status if message.order else None,
            data=msgspec.structs.asdict(message.event),
        )


class OrderEvents(msgspec.Struct, frozen=True):
    items: list[OrderEventView]


class WithHistory(msgspec.Struct, Generic[T], frozen=True):
    """An answer read from memory and the history store together. `complete` is False
    when the store could not be asked: only what memory holds is there."""

    answer: T
    complete: bool
