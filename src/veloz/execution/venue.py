"""What the engine needs from a venue, real or simulated.

A venue answers only through execution reports (`OrderReport` events) delivered to the
report handler, like a real exchange's user-data stream. `submit` and `cancel` return once
the request is on its way; their outcome arrives later as reports.
"""

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Protocol, runtime_checkable

import msgspec

from veloz.model.account import Balance
from veloz.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from veloz.model.events import OrderFilled, OrderReport
from veloz.model.orders import Order

ReportHandler = Callable[[OrderReport], None]


class VenueOrder(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    """An order as sent to a venue."""

    client_order_id: str
    symbol: str
    side: OrderSide
    order_type: OrderType
    time_in_force: TimeInForce
    qty: Decimal
    price: Decimal | None

    @classmethod
    def of(cls, order: Order) -> "VenueOrder":
        return cls(
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            order_type=order.order_type,
            time_in_force=order.time_in_force,
            qty=order.order_qty,
            price=order.limit_price,
        )


class VenueOrderState(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    """A venue's answer to "what do you know of this client order id?"."""

    client_order_id: str
    venue_order_id: str
    status: OrderStatus
    executed_qty: Decimal
    fills: list[OrderFilled]
    reason: str = ""
    # What the order is, for one the engine may not know (found open at the venue).
    symbol: str = ""
    side: OrderSide | None = None
    order_qty: Decimal | None = None
    price: Decimal | None = None


class Venue(Protocol):
    name: str

    @property
    def connected(self) -> bool:
        """Whether the venue can take requests now."""
        ...

    def set_report_handler(self, handler: ReportHandler) -> None: ...

    def restore(self, open_orders: Sequence[Order], balances: Sequence[Balance]) -> None:
        """What the journal says the venue held, told before `connect()` after a restart.
        A venue that keeps its own account (a real exchange) has nothing to do; the
        simulated one resumes from it."""
        ...

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def submit(self, order: VenueOrder) -> None: ...

    async def cancel(self, client_order_id: str, symbol: str) -> None: ...

    async def query(self, client_order_id: str, symbol: str) -> VenueOrderState | None:
        """The venue's record of the order, or None if it never saw it."""
        ...

    async def open_orders(self) -> list[VenueOrderState]:
        """Every order the venue holds open for this account, whoever placed it."""
        ...

    async def balances(self) -> dict[str, Decimal]:
        """Total balance per asset."""
        ...

    async def ping(self) -> float:
        """Round-trip time to the venue in seconds; raises if unreachable."""
        ...


@runtime_checkable
class QueueingVenue(Venue, Protocol):
    """A venue that queues requests itself and answers them later (the simulated one):
    handing it a request cannot wait on anything, so it takes requests at once, in the
    order they are handed over, without a task each. A refusal (not connected) raises."""

    def submit_nowait(self, order: VenueOrder) -> None: ...

    def cancel_nowait(self, client_order_id: str, symbol: str) -> None: ...
