"""Outward shapes shared by the transports: the order as `api.md` lists its fields, and
how a bus message reads as a stdio/stream event."""

from decimal import Decimal
from typing import Any

import msgspec

from veloz.engine.bus import BusMessage, Journaled
from veloz.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from veloz.model.events import BalanceSet, OrderDenied, OrderFilled, TradingModeChanged
from veloz.model.market import QuoteTick
from veloz.model.orders import Order
from veloz.risk.monitor import RiskAlert


class OrderView(msgspec.Struct, frozen=True, kw_only=True, rename={"order_type": "type"}):
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
    if message.order is None or isinstance(event, OrderDenied):
        return []
    update = {
        "type": "order_update",
        "ts_ns": event.ts_ns,
        "seq": message.seq,
        "event": type(event).__name__,
    } | msgspec.structs.asdict(OrderView.of(message.order))
    if isinstance(event, OrderFilled):
        fill = {"type": "fill", "seq": message.seq} | _fill_fields(event)
        return [fill, update]
    return [update]


def _fill_fields(fill: OrderFilled) -> dict[str, Any]:
    return {
        "ts_ns": fill.ts_ns,
        "trade_id": fill.trade_id,
        "client_order_id": fill.client_order_id,
        "symbol": fill.symbol,
        "side": fill.side,
        "qty": fill.qty,
        "price": fill.price,
        "fee": fill.fee,
        "fee_asset": fill.fee_asset,
        "liquidity": fill.liquidity,
    }
