"""Reconciliation: after replay, ask the venue about every order that was live and work
out the events we missed. Orders are looked up by client order id and never re-sent: an
order the venue never saw was not placed, so it is rejected, not retried."""

from collections.abc import Callable
from dataclasses import dataclass, field

from veloz.execution.venue import Venue, VenueOrderState
from veloz.model.enums import OrderStatus
from veloz.model.events import (
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderRejected,
    OrderReport,
)
from veloz.model.orders import Order

NOT_AT_VENUE = "not_at_venue"


@dataclass
class ReconcileResult:
    reports: list[OrderReport] = field(default_factory=list)
    cancels_to_resend: list[Order] = field(default_factory=list)
    checked: int = 0


async def reconcile(
    venue: Venue, orders: list[Order], now_ns: Callable[[], int]
) -> ReconcileResult:
    result = ReconcileResult()
    for order in orders:
        state = await venue.query(order.client_order_id, order.symbol)
        result.checked += 1
        if state is None:
            result.reports.append(_unknown_at_venue(order, now_ns()))
            continue
        result.reports.extend(_missed_reports(order, state, now_ns()))
        if order.status is OrderStatus.PENDING_CANCEL and not state.status.is_final:
            # Our cancel may never have left; cancelling is idempotent, so send it again.
            result.cancels_to_resend.append(order)
    return result


def _unknown_at_venue(order: Order, ts_ns: int) -> OrderReport:
    if order.venue_order_id is None and order.executed_qty == 0:
        return OrderRejected(
            client_order_id=order.client_order_id, reason=NOT_AT_VENUE, ts_ns=ts_ns
        )
    # The venue acknowledged it once and has now forgotten it: it cannot be working.
    return OrderExpired(client_order_id=order.client_order_id, reason=NOT_AT_VENUE, ts_ns=ts_ns)


def _missed_reports(order: Order, state: VenueOrderState, ts_ns: int) -> list[OrderReport]:
    reports: list[OrderReport] = []
    coid = order.client_order_id
    if order.venue_order_id is None and state.status is not OrderStatus.REJECTED:
        reports.append(
            OrderAccepted(client_order_id=coid, venue_order_id=state.venue_order_id, ts_ns=ts_ns)
        )
    reports.extend(f for f in state.fills if f.trade_id not in order.trade_ids)
    if state.status is OrderStatus.CANCELLED:
        reports.append(OrderCancelled(client_order_id=coid, reason=state.reason, ts_ns=ts_ns))
    elif state.status is OrderStatus.EXPIRED:
        reports.append(OrderExpired(client_order_id=coid, reason=state.reason, ts_ns=ts_ns))
    elif state.status is OrderStatus.REJECTED:
        reports.append(OrderRejected(client_order_id=coid, reason=state.reason, ts_ns=ts_ns))
    return reports
