"""Events: facts, in the past tense. Every state change in the engine is one of these,
journaled before anyone is told about it. Decimals travel as strings in the journal."""

from decimal import Decimal
from typing import Any

import msgspec

from veloz.model.enums import (
    LiquiditySide,
    OrderSide,
    OrderType,
    StrategyState,
    TimeInForce,
    TradingMode,
)
from veloz.model.errors import DenialReason


class Event(msgspec.Struct, gc=False, frozen=True, kw_only=True, tag=True):
    """Base of all events; the tag is the class name."""

    ts_ns: int


class OrderEvent(Event, frozen=True, kw_only=True):
    client_order_id: str


class OrderSubmitted(OrderEvent, frozen=True, kw_only=True):
    """The engine took an order (journal entry `OrderNew`). Until the venue answers it is
    `PENDING_NEW`. `reference_price` is the touch at submission for market orders: the
    price funds are locked at, recorded so that replay locks exactly the same amount."""

    symbol: str
    side: OrderSide
    order_type: OrderType
    time_in_force: TimeInForce
    qty: Decimal
    price: Decimal | None = None
    reference_price: Decimal | None = None
    strategy_id: str | None = None


class OrderAccepted(OrderEvent, frozen=True, kw_only=True):
    venue_order_id: str


class OrderRejected(OrderEvent, frozen=True, kw_only=True):
    reason: str


class OrderCancelRequested(OrderEvent, frozen=True, kw_only=True):
    """A cancel was decided and is about to go to the venue (`PENDING_CANCEL`)."""


class OrderCancelRejected(OrderEvent, frozen=True, kw_only=True):
    reason: str


class OrderCancelled(OrderEvent, frozen=True, kw_only=True):
    reason: str = ""


class OrderExpired(OrderEvent, frozen=True, kw_only=True):
    """IOC/FOK remainder, or a market order the book could not fill."""

    reason: str = ""


class OrderFilled(OrderEvent, frozen=True, kw_only=True):
    trade_id: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: LiquiditySide
    # Denormalised so a fill is readable on its own (journal inspect, the trades feed).
    symbol: str
    side: OrderSide


class OrderDenied(OrderEvent, frozen=True, kw_only=True):
    """The engine refused an order before it entered the book (risk, mode, validation
    that needs state). Journaled and counted, but no order exists afterwards."""

    symbol: str
    side: OrderSide
    qty: Decimal
    price: Decimal | None
    reason: DenialReason
    message: str


class TradingModeChanged(Event, frozen=True, kw_only=True):
    mode: TradingMode
    reason: str
    actor: str = "engine"


class BalanceSet(Event, frozen=True, kw_only=True):
    """Sets an asset's total balance, as the venue reports it (start balances, deposits,
    reconciliation corrections)."""

    asset: str
    total: Decimal


OrderReport = (
    OrderAccepted
    | OrderRejected
    | OrderCancelRejected
    | OrderCancelled
    | OrderExpired
    | OrderFilled
)
"""What a venue may send back about an order."""


class StrategyChanged(Event, frozen=True, kw_only=True):
    """A strategy instance was added, started, paused, stopped or removed (journal entry
    `StrategyChange`). Each carries the whole instance (what it runs, on which symbol,
    with which parameters), so the newest one per strategy is all a restart needs to
    rebuild and resume it."""

    strategy_id: str
    state: StrategyState
    name: str
    symbol: str
    params: dict[str, Any]  # as the strategy's parameters encode: numbers, decimal strings
    reason: str = ""
    actor: str = "engine"
