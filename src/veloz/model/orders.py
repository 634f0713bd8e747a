"""The order and its state machine.

An `Order` changes only through `apply(event)`. An event that does not fit the order's
state raises `InvalidTransition` before anything is touched, so a refused event leaves the
order exactly as it was.
"""

from decimal import Decimal

import msgspec

from veloz.model.enums import FINAL_STATUSES, OrderSide, OrderStatus, OrderType, TimeInForce
from veloz.model.errors import ErrorCode, InvalidTransition
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

S = OrderStatus
_ZERO = Decimal(0)
# Read once for the hot paths: on Python 3.11 reading a member off its enum class
# (`OrderSide.BUY`) takes the slow attribute path of a class with `__getattr__`.
_PENDING_NEW, _ACCEPTED, _FILLED = S.PENDING_NEW, S.ACCEPTED, S.FILLED
_PARTIALLY_FILLED, _PENDING_CANCEL = S.PARTIALLY_FILLED, S.PENDING_CANCEL
_LIVE = frozenset({S.PENDING_NEW, S.ACCEPTED, S.PARTIALLY_FILLED, S.PENDING_CANCEL})

# Which statuses each event may be applied in. Fills during PENDING_CANCEL are legal: the
# cancel and the fill cross on the wire. A cancel rejection is information in any status
# ("too late, it filled"); it changes the status only of an order waiting on that cancel.
_APPLICABLE_IN: dict[type[OrderEvent], frozenset[OrderStatus]] = {
    OrderAccepted: _LIVE,
    OrderRejected: frozenset({S.PENDING_NEW, S.PENDING_CANCEL}),
    OrderCancelRequested: frozenset({S.PENDING_NEW, S.ACCEPTED, S.PARTIALLY_FILLED}),
    OrderCancelRejected: frozenset(OrderStatus),
    OrderCancelled: _LIVE,
    OrderExpired: _LIVE,
    OrderFilled: _LIVE,
}


# gc=False on this and the other hot-path structs: they hold only scalars, decimals,
# strings and lists of such structs, so they can never be part of a reference cycle, and
# keeping 100k resting orders out of the cyclic collector removes its long pauses.
class Order(msgspec.Struct, gc=False, kw_only=True, rename={"order_type": "type"}):
    client_order_id: str
    symbol: str
    side: OrderSide
    order_type: OrderType
    time_in_force: TimeInForce
    order_qty: Decimal
    limit_price: Decimal | None
    status: OrderStatus = OrderStatus.PENDING_NEW
    venue_order_id: str | None = None
    executed_qty: Decimal = Decimal(0)
    cum_quote: Decimal = Decimal(0)
    avg_price: Decimal | None = None
    fee: Decimal = Decimal(0)
    fee_asset: str | None = None
    reason: str = ""
    strategy_id: str | None = None
    reference_price: Decimal | None = None
    created_ts_ns: int = 0
    last_ts_ns: int = 0
    trade_ids: list[str] = msgspec.field(default_factory=list)

    @classmethod
    def from_submitted(cls, event: OrderSubmitted) -> "Order":
        return cls(
            client_order_id=event.client_order_id,
            symbol=event.symbol,
            side=event.side,
            order_type=event.order_type,
            time_in_force=event.time_in_force,
            order_qty=event.qty,
            limit_price=event.price,
            reference_price=event.reference_price,
            strategy_id=event.strategy_id,
            created_ts_ns=event.ts_ns,
            last_ts_ns=event.ts_ns,
        )

    # Both asked several times per order event: the membership test is written out rather
    # than going through `status.is_final`, a property call more each time.
    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def leaves_qty(self) -> Decimal:
        return _ZERO if self.status in FINAL_STATUSES else self.order_qty - self.executed_qty

    def same_request(self, event: OrderSubmitted) -> bool:
        """Whether `event` asks for exactly this order (idempotent resubmission)."""
        return (
            self.symbol == event.symbol
            and self.side is event.side
            and self.order_type is event.order_type
            and self.time_in_force is event.time_in_force
            and self.order_qty == event.qty
            and self.limit_price == event.price
            and self.strategy_id == event.strategy_id
        )

    def check(self, event: OrderEvent) -> None:
        """Raise InvalidTransition if `event` cannot be applied now; change nothing."""
        if event.client_order_id != self.client_order_id:
            raise InvalidTransition(
                f"event for {event.client_order_id} applied to {self.client_order_id}",
                code=ErrorCode.MISMATCHED_ORDER,
            )
        # Events are told apart by their exact type, as `_APPLICABLE_IN` knows them: an
        # isinstance that fails on a msgspec Struct class is slow, and each order event
        # is checked on the order path.
        if type(event) is OrderFilled and event.trade_id in self.trade_ids:
            # Checked before the status: a venue re-sending a fill of a filled order is a
            # duplicate to ignore, not an illegal transition to alarm on.
            raise InvalidTransition(
                f"trade {event.trade_id} already applied to {self.client_order_id}",
                code=ErrorCode.DUPLICATE_TRADE,
            )
        allowed = _APPLICABLE_IN.get(type(event))
        if allowed is None:
            raise InvalidTransition(f"{type(event).__name__} is not an order report")
        if self.status not in allowed:
            raise InvalidTransition(
                f"{type(event).__name__} cannot apply to order {self.client_order_id} "
                f"in status {self.status}"
            )
        if type(event) is OrderFilled:
            self._check_fill(event)
        elif type(event) is OrderRejected and (
            self.venue_order_id is not None or self.executed_qty > _ZERO
        ):
            raise InvalidTransition(
                f"OrderRejected cannot apply to order {self.client_order_id} in status "
                f"{self.status}: the venue already accepted or filled it"
            )

    def apply(self, event: OrderEvent) -> None:
        self.check(event)  # so the event is one of `_APPLICABLE_IN`'s exact types
        if type(event) is OrderFilled:  # first: the most frequent report
            self._fill(event)
        elif type(event) is OrderAccepted:
            self.venue_order_id = event.venue_order_id
            if self.status is _PENDING_NEW:
                self.status = _ACCEPTED
        elif type(event) is OrderRejected:
            self.status = S.REJECTED
            self.reason = event.reason
        elif type(event) is OrderCancelRequested:
            self.status = S.PENDING_CANCEL
        elif type(event) is OrderCancelRejected:
            if self.status is not _PENDING_CANCEL:
                return  # "too late to cancel": nothing about the order changes
            self.status = self._working_status()
            self.reason = event.reason
        elif type(event) is OrderCancelled:
            self.status = S.CANCELLED
            self.reason = event.reason
        elif type(event) is OrderExpired:
            self.status = S.EXPIRED
            self.reason = event.reason
        if event.ts_ns > self.last_ts_ns:  # max(last_ts_ns, ts_ns)
            self.last_ts_ns = event.ts_ns

    def _check_fill(self, fill: OrderFilled) -> None:
        if fill.qty <= _ZERO or fill.price <= _ZERO or fill.fee < _ZERO:
            raise InvalidTransition(
                f"fill {fill.trade_id} has a non-positive qty/price or a negative fee",
                code=ErrorCode.ILLEGAL_TRANSITION,
            )
        if self.executed_qty + fill.qty > self.order_qty:
            raise InvalidTransition(
                f"fill {fill.trade_id} of {fill.qty} would take {self.client_order_id} past "
                f"its quantity {self.order_qty} (executed {self.executed_qty})",
                code=ErrorCode.OVERFILL,
            )
        if self.fee_asset is not None and fill.fee and fill.fee_asset != self.fee_asset:
            raise InvalidTransition(
                f"fill {fill.trade_id} charges fees in {fill.fee_asset}, earlier fills in "
                f"{self.fee_asset}",
                code=ErrorCode.ILLEGAL_TRANSITION,
            )

    def _fill(self, fill: OrderFilled) -> None:
        self.trade_ids.append(fill.trade_id)
        self.executed_qty += fill.qty
        self.cum_quote += fill.qty * fill.price
        self.avg_price = self.cum_quote / self.executed_qty
        if fill.fee:
            self.fee += fill.fee
            self.fee_asset = fill.fee_asset
        if self.executed_qty == self.order_qty:
            self.status = _FILLED
        elif self.status is not _PENDING_CANCEL:
            self.status = _PARTIALLY_FILLED

    def _working_status(self) -> OrderStatus:
        """The status a live order has when no cancel is in flight."""
        if self.executed_qty > 0:
            return S.PARTIALLY_FILLED
        return S.ACCEPTED if self.venue_order_id is not None else S.PENDING_NEW
