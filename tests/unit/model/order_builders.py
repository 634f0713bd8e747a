"""Builders for order tests: submissions, venue reports and orders driven into each status
through legal events only, so a test starts from a state the machine itself produced."""

from decimal import Decimal
from typing import Any

import msgspec

from veloz.model.enums import LiquiditySide, OrderSide, OrderStatus, OrderType, TimeInForce
from veloz.model.events import (
    OrderAccepted,
    OrderCancelled,
    OrderCancelRejected,
    OrderCancelRequested,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
)
from veloz.model.orders import Order

D = Decimal
COID = "ord-1"
ORDER_QTY = D("1")


def submitted(
    client_order_id: str = COID,
    qty: str | Decimal = ORDER_QTY,
    price: str | Decimal | None = "100",
    *,
    symbol: str = "BTCUSDT",
    side: OrderSide = OrderSide.BUY,
    ts_ns: int = 1,
    strategy_id: str | None = None,
) -> OrderSubmitted:
    """A LIMIT GTC submission when `price` is given, else a MARKET IOC one."""
    return OrderSubmitted(
        ts_ns=ts_ns,
        client_order_id=client_order_id,
        symbol=symbol,
        side=side,
        order_type=OrderType.LIMIT if price is not None else OrderType.MARKET,
        time_in_force=TimeInForce.GTC if price is not None else TimeInForce.IOC,
        qty=D(qty),
        price=None if price is None else D(price),
        strategy_id=strategy_id,
    )


def new_order(client_order_id: str = COID, qty: str | Decimal = ORDER_QTY) -> Order:
    return Order.from_submitted(submitted(client_order_id, qty))


def accepted(coid: str = COID, ts_ns: int = 2, venue_order_id: str = "V-1") -> OrderAccepted:
    return OrderAccepted(client_order_id=coid, ts_ns=ts_ns, venue_order_id=venue_order_id)


def rejected(coid: str = COID, ts_ns: int = 2, reason: str = "venue said no") -> OrderRejected:
    return OrderRejected(client_order_id=coid, ts_ns=ts_ns, reason=reason)


def cancel_requested(coid: str = COID, ts_ns: int = 3) -> OrderCancelRequested:
    return OrderCancelRequested(client_order_id=coid, ts_ns=ts_ns)


def cancel_rejected(
    coid: str = COID, ts_ns: int = 4, reason: str = "too late"
) -> OrderCancelRejected:
    return OrderCancelRejected(client_order_id=coid, ts_ns=ts_ns, reason=reason)


def cancelled(coid: str = COID, ts_ns: int = 4, reason: str = "user") -> OrderCancelled:
    return OrderCancelled(client_order_id=coid, ts_ns=ts_ns, reason=reason)


def expired(coid: str = COID, ts_ns: int = 4, reason: str = "ioc remainder") -> OrderExpired:
    return OrderExpired(client_order_id=coid, ts_ns=ts_ns, reason=reason)


def filled(
    qty: str | Decimal,
    price: str | Decimal = "100",
    trade_id: str = "T-1",
    *,
    coid: str = COID,
    fee: str | Decimal = "0",
    fee_asset: str = "USDT",
    ts_ns: int = 5,
) -> OrderFilled:
    return OrderFilled(
        client_order_id=coid,
        ts_ns=ts_ns,
        trade_id=trade_id,
        qty=D(qty),
        price=D(price),
        fee=D(fee),
        fee_asset=fee_asset,
        liquidity=LiquiditySide.TAKER,
        symbol="BTCUSDT",
        side=OrderSide.BUY,
    )


# The legal path from PENDING_NEW to each status (order qty 1).
PATHS: dict[OrderStatus, list[OrderEvent]] = {
    OrderStatus.PENDING_NEW: [],
    OrderStatus.ACCEPTED: [accepted()],
    OrderStatus.PARTIALLY_FILLED: [accepted(), filled("0.4", trade_id="T-0")],
    OrderStatus.FILLED: [accepted(), filled("1", trade_id="T-0")],
    OrderStatus.PENDING_CANCEL: [accepted(), cancel_requested()],
    OrderStatus.CANCELLED: [accepted(), cancelled()],
    OrderStatus.REJECTED: [rejected()],
    OrderStatus.EXPIRED: [accepted(), expired()],
}


def order_in(status: OrderStatus, client_order_id: str = COID) -> Order:
    """An order of qty 1 brought to `status` through the legal events in PATHS."""
    order = new_order(client_order_id)
    for event in PATHS[status]:
        order.apply(msgspec.structs.replace(event, client_order_id=client_order_id))
    assert order.status is status
    return order


def status_of(order: Order) -> OrderStatus:
    """The order's status, read afresh (type checkers keep an earlier `is` narrowing)."""
    return order.status


def state(order: Order) -> Any:
    """Everything an order holds, as plain data, for before/after comparisons."""
    return msgspec.to_builtins(order)
