"""What the trading core calls out to. The core is synchronous and does no I/O: it hands
every event it decides to an `EventSink` and every venue request to an `OrderRouter`.

The runtimes choose the adapters. Live, the sink is the journal (publication and the
acknowledgement wait for durability there) and the router holds each request until the
event that decided it is durable, so nothing reaches a venue before it is on disk. In a
backtest the sink publishes at once and the router hands requests straight to the
simulated exchange.
"""

from typing import Protocol

from veloz.execution.venue import VenueOrder
from veloz.model.events import Event
from veloz.model.orders import Order


class EventSink(Protocol):
    @property
    def accepting(self) -> bool:
        """Whether `emit` can take events now (live: the journal is open and healthy)."""
        ...

    def emit(self, event: Event, order: Order | None) -> None:
        """Record an event the core has applied; `order` is the order as it stands right
        after it. Raises CommandRejected(journal_unavailable) if it cannot be recorded."""
        ...


class OrderRouter(Protocol):
    def send_order(self, order: VenueOrder) -> None: ...

    def send_cancel(self, client_order_id: str, symbol: str) -> None: ...
