"""Binance's order JSON in our terms: what an order answer (new order, cancel, query, open
orders), a trade of `myTrades` or an `executionReport` of the user data stream says about
one order, as an `OrderUpdate`; and our order as the parameters of `POST /api/v3/order`.

Nothing here does I/O or remembers anything: which of these facts the engine has already
been told is `binance_ledger.py`'s business. Amounts are parsed from Binance's strings into
`Decimal` exactly; Binance's millisecond times become nanoseconds. A message without what
we need raises `MalformedMessage`, for the caller to count and log once.
"""

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from veloz.execution.venue import VenueOrder, VenueOrderState
from veloz.model.enums import LiquiditySide, OrderSide, OrderStatus, OrderType
from veloz.model.events import OrderFilled

_NS_PER_MS = 1_000_000


# Binance's order status (enums.md, "Order status") -> ours. PENDING_NEW is an order of a
# list waiting for its trigger: accepted, not working yet. EXPIRED_IN_MATCH is an order
# expired by self-trade prevention.
_STATUS = {
    "NEW": OrderStatus.ACCEPTED,
    "PENDING_NEW": OrderStatus.ACCEPTED,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELLED,
    "PENDING_CANCEL": OrderStatus.PENDING_CANCEL,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}


class MalformedMessage(ValueError):
    """A message from Binance without a field we need, or with one we cannot read."""


@contextmanager
def _readable(what: str) -> Iterator[None]:
    """A field missing or of the wrong type in `what` becomes one MalformedMessage naming
    it; a MalformedMessage raised inside passes as it is."""
    try:
        yield
    except MalformedMessage:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise MalformedMessage(f"{what} without a readable {error}") from None


class OrderUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """What one Binance message says of one order: its status and cumulative executed
    quantity then, and the fills it carries (all of them for a query with its trades, the
    one trade of an executionReport, the immediate ones of a FULL new-order answer)."""

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: OrderSide
    status: OrderStatus
    executed_qty: Decimal
    ts_ns: int
    fills: tuple[OrderFilled, ...] = ()
    reason: str = ""
    order_qty: Decimal | None = None
    price: Decimal | None = None

    def state(self) -> VenueOrderState:
        return VenueOrderState(
            client_order_id=self.client_order_id,
            venue_order_id=self.venue_order_id,
            status=self.status,
            executed_qty=self.executed_qty,
            fills=list(self.fills),
            reason=self.reason,
            symbol=self.symbol,
            side=self.side,
            order_qty=self.order_qty,
            price=self.price,
        )


# -- our order -> Binance ----------------------------------------------------------------


def plain(value: Decimal) -> str:
    """A decimal as Binance takes it: positional notation, never an exponent, no trailing
    zeros after the point (`1E+2` -> "100", `0.0100` -> "0.01")."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def new_order_params(order: VenueOrder) -> dict[str, str]:
    """`POST /api/v3/order` for `order`, under our client order id, with the FULL answer
    (the fills made at once come back with it)."""
    params = {
        "symbol": order.symbol,
        "side": order.side.value,
        "type": order.order_type.value,
        "quantity": plain(order.qty),
        "newClientOrderId": order.client_order_id,
        "newOrderRespType": "FULL",
    }
    if order.order_type is OrderType.LIMIT:
        if order.price is None:
            raise ValueError(f"limit order {order.client_order_id} has no price")
        params["timeInForce"] = order.time_in_force.value
        params["price"] = plain(order.price)
    return params


# -- Binance -> our terms ----------------------------------------------------------------


def order_update(
    data: Mapping[str, Any], *, fills: Sequence[OrderFilled] | None = None
) -> OrderUpdate:
    """An order object as the new-order (any response type but ACK), cancel, query and
    open-orders answers carry it. `fills` are the order's trades when known (from
    `myTrades`); otherwise those of a FULL new-order answer, which are taker fills."""
    with _readable("order answer"):
        client_order_id = _text(data, "origClientOrderId") or _text(data, "clientOrderId")
        side = OrderSide(data["side"])
        symbol = _text(data, "symbol")
        ts_ms = data.get("updateTime") or data.get("transactTime") or data.get("time") or 0
        ts_ns = int(ts_ms) * _NS_PER_MS
        if fills is None:
            fills = [
                _response_fill(fill, client_order_id, symbol, side, ts_ns)
                for fill in data.get("fills") or ()
            ]
        price = _decimal(data, "price") if "price" in data else None
        return OrderUpdate(
            client_order_id=client_order_id,
            venue_order_id=str(int(data["orderId"])),
            symbol=symbol,
            side=side,
            status=status_of(data["status"]),
            executed_qty=_decimal(data, "executedQty"),
            ts_ns=ts_ns,
            fills=tuple(fills),
            reason=_reason(data["status"], data.get("expiryReason")),
            order_qty=_decimal(data, "origQty") if "origQty" in data else None,
            # Binance shows a market order's price as zero.
            price=price if price else None,
        )


def trade_fill(trade: Mapping[str, Any], client_order_id: str) -> OrderFilled:
    """One of our trades as `GET /api/v3/myTrades` lists it."""
    with _readable("trade"):
        return OrderFilled(
            client_order_id=client_order_id,
            trade_id=str(int(trade["id"])),
            qty=_decimal(trade, "qty"),
            price=_decimal(trade, "price"),
            fee=_decimal(trade, "commission"),
            fee_asset=str(trade.get("commissionAsset") or ""),
            liquidity=LiquiditySide.MAKER if trade["isMaker"] else LiquiditySide.TAKER,
            symbol=_text(trade, "symbol"),
            side=OrderSide.BUY if trade["isBuyer"] else OrderSide.SELL,
            ts_ns=int(trade["time"]) * _NS_PER_MS,
        )


def execution_update(event: Mapping[str, Any]) -> OrderUpdate:
    """An `executionReport` event of the user data stream (user-data-stream.md)."""
    with _readable("executionReport"):
        # A cancel's report names the cancel request in `c` and the order in `C`.
        client_order_id = _text(event, "C") or _text(event, "c")
        symbol = _text(event, "s")
        side = OrderSide(event["S"])
        ts_ns = int(event.get("T") or event["E"]) * _NS_PER_MS
        fills: tuple[OrderFilled, ...] = ()
        if event["x"] == "TRADE":
            fills = (
                OrderFilled(
                    client_order_id=client_order_id,
                    trade_id=str(int(event["t"])),
                    qty=_decimal(event, "l"),
                    price=_decimal(event, "L"),
                    fee=_decimal(event, "n"),
                    fee_asset=str(event.get("N") or ""),
                    liquidity=LiquiditySide.MAKER if event["m"] else LiquiditySide.TAKER,
                    symbol=symbol,
                    side=side,
                    ts_ns=ts_ns,
                ),
            )
        price = _decimal(event, "p")
        reason = event.get("r")
        return OrderUpdate(
            client_order_id=client_order_id,
            venue_order_id=str(int(event["i"])),
            symbol=symbol,
            side=side,
            status=status_of(event["X"]),
            executed_qty=_decimal(event, "z"),
            ts_ns=ts_ns,
            fills=fills,
            reason=_reason(event["X"], event.get("eR"), reason if reason != "NONE" else None),
            order_qty=_decimal(event, "q"),
            price=price if price else None,
        )


def account_totals(data: Mapping[str, Any]) -> dict[str, Decimal]:
    """`GET /api/v3/account`: free plus locked per asset."""
    with _readable("account answer"):
        return {
            str(item["asset"]): _decimal(item, "free") + _decimal(item, "locked")
            for item in data["balances"]
        }


def position_totals(event: Mapping[str, Any]) -> dict[str, Decimal]:
    """An `outboundAccountPosition` event: free plus locked of the assets it names."""
    with _readable("outboundAccountPosition"):
        return {str(item["a"]): _decimal(item, "f") + _decimal(item, "l") for item in event["B"]}


def status_of(binance_status: object) -> OrderStatus:
    status = _STATUS.get(str(binance_status))
    if status is None:
        raise MalformedMessage(f"unknown order status {binance_status!r}")
    return status


def rejection(code: int | None, msg: str) -> str:
    """The reason we report for an order Binance refused: its code and message."""
    return f"Binance {code}: {msg}" if code is not None else f"Binance: {msg}"


# -- parts -----------------------------------------------------------------------------


def _response_fill(
    fill: Mapping[str, Any], client_order_id: str, symbol: str, side: OrderSide, ts_ns: int
) -> OrderFilled:
    # The fills of a new-order answer happened as the order arrived: it took liquidity.
    return OrderFilled(
        client_order_id=client_order_id,
        trade_id=str(int(fill["tradeId"])),
        qty=_decimal(fill, "qty"),
        price=_decimal(fill, "price"),
        fee=_decimal(fill, "commission"),
        fee_asset=str(fill.get("commissionAsset") or ""),
        liquidity=LiquiditySide.TAKER,
        symbol=symbol,
        side=side,
        ts_ns=ts_ns,
    )


def _reason(status: object, expiry: object = None, rejected: object = None) -> str:
    if status == "EXPIRED_IN_MATCH":
        return str(expiry or "self-trade prevention")
    if expiry:
        return str(expiry)
    if rejected:
        return str(rejected)
    return ""


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedMessage(f"{key!r} is not a string")
    return value


def _decimal(data: Mapping[str, Any], key: str) -> Decimal:
    """Binance sends amounts as strings; a float would already have lost digits."""
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedMessage(f"{key!r} is not a decimal string")
    try:
        parsed = Decimal(value)
    except InvalidOperation:
        raise MalformedMessage(f"{key!r} is not a decimal") from None
    if not parsed.is_finite():
        raise MalformedMessage(f"{key!r} is not a finite decimal")
    return parsed
