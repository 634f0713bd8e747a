"""How a bus message reads as a stream event (SSE, `/ws/orders`, stdio), and the backlog
a resuming stream replays."""

from typing import Any

import msgspec

from veloz.engine.bus import BusMessage, Journaled
from veloz.engine.views.orders import FillView, OrderView
from veloz.model.events import (
    BalanceSet,
    OrderDenied,
    OrderFilled,
    StrategyChanged,
    TradingModeChanged,
)
from veloz.model.market import QuoteTick
from veloz.risk.monitor import RiskAlert


class Backlog(msgspec.Struct, frozen=True, kw_only=True):
    """The journaled events after a sequence, oldest first. `complete` is False when some
    of them have already left the replay buffer: the client must re-fetch state instead
    of resuming. `last_seq` is the newest sequence held."""

    messages: list[Journaled]
    complete: bool
    last_seq: int | None


def stream_events(message: BusMessage) -> list[dict[str, Any]]:
    """The events (`type` + fields) a bus message becomes on stdio and the streams. In an
    `order_update` the order's type is `order_type`, since `type` names the event."""
    if isinstance(message, QuoteTick):
        return [
            {
                "type": "market",
                "ts_ns": message.ts_ns,
                "symbol": message.symbol,
                "price": message.mid,
                "bid": message.bid,
                "ask": message.ask,
                "bid_size": message.bid_size,
                "ask_size": message.ask_size,
            }
        ]
    if isinstance(message, RiskAlert):
        return [{"type": "risk"} | msgspec.structs.asdict(message)]
    if not isinstance(message, Journaled):
        return []
    event = message.event
    if isinstance(event, TradingModeChanged | BalanceSet):
        return [
            {
                "type": "account",
                "ts_ns": event.ts_ns,
                "seq": message.seq,
                "event": type(event).__name__,
            }
            | msgspec.structs.asdict(event)
        ]
    if isinstance(event, StrategyChanged):
        return [{"type": "strategy", "seq": message.seq} | msgspec.structs.asdict(event)]
    if message.order is None or isinstance(event, OrderDenied):
        return []
    update = {
        "type": "order_update",
        "ts_ns": event.ts_ns,
        "seq": message.seq,
        "event": type(event).__name__,
    } | msgspec.structs.asdict(OrderView.of(message.order))
    if isinstance(event, OrderFilled):
        fill = {"type": "fill", "seq": message.seq} | msgspec.structs.asdict(FillView.of(event))
        return [fill, update]
    return [update]
