"""The in-process event bus: journaled events (after they are durable) and market data,
fanned out to subscribers in the order they were published."""

import logging
from collections.abc import Callable

import msgspec

from veloz.model.events import Event
from veloz.model.market import Bar, QuoteTick, TradeTick
from veloz.model.orders import Order
from veloz.risk.monitor import RiskAlert

logger = logging.getLogger(__name__)


class Journaled(msgspec.Struct, gc=False, frozen=True):
    """A durable event, its journal sequence, and the order as it stood right after it."""

    seq: int
    event: Event
    order: Order | None = None


BusMessage = Journaled | QuoteTick | TradeTick | Bar | RiskAlert
Handler = Callable[[BusMessage], None]


class EventBus:
    def __init__(self) -> None:
        self._handlers: tuple[Handler, ...] = ()

    @property
    def has_subscribers(self) -> bool:
        return bool(self._handlers)

    def subscribe(self, handler: Handler) -> Callable[[], None]:
        self._handlers = (*self._handlers, handler)

        def unsubscribe() -> None:
            self._handlers = tuple(h for h in self._handlers if h is not handler)

        return unsubscribe

    def publish(self, message: BusMessage) -> None:
        for handler in self._handlers:
            try:
                handler(message)
            except Exception:
                # One broken subscriber must not starve the others or the engine.
                logger.exception("event bus subscriber %r failed", handler)
