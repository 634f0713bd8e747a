"""Reconciliation: after replay (and after every venue reconnect), ask the venue about
every order that was live and work out the events we missed. Orders are looked up by
client order id and never re-sent: an order the venue never saw was not placed, so it is
rejected, not retried. Fills carry the venue's trade ids, so one seen before is not
applied twice.

It also lists what the venue holds that we do not know: orders open there under ids the
journal never had (orphans: placed by hand, by another program, or lost with a journal),
and balances that differ from ours. Deciding what to do about them is the runtime's.
"""

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

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
    # Open at the venue under a client order id we never had.
    orphans: list[VenueOrderState] = field(default_factory=list)


async def reconcile(
    venue: Venue, orders: list[Order], now_ns: Callable[[], int]
) -> ReconcileResult:
    """What the venue says of `orders` (ours that were live) that we have not applied."""
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


@dataclass
class Reconciliation:
    """The newest reconciliation's findings and the running counts, for the API and the
    metrics."""

    runs: int = 0
    last_ns: int | None = None
    orphans: list[VenueOrderState] = field(default_factory=list)
    orphans_found: int = 0
    orphans_cancelled: int = 0
    missed_reports: int = 0
    balance_mismatches: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)

    def record(
        self,
        now_ns: int,
        result: ReconcileResult,
        orphans: list[VenueOrderState],
        cancelled: int,
        mismatches: dict[str, tuple[Decimal, Decimal]],
    ) -> None:
        self.runs += 1
        self.last_ns = now_ns
        self.orphans = orphans
        self.orphans_found += len(orphans)
        self.orphans_cancelled += cancelled
        self.missed_reports += len(result.reports)
        self.balance_mismatches = mismatches


async def find_orphans(venue: Venue, known: Collection[str]) -> list[VenueOrderState]:
    """Orders open at the venue whose client order id is not in `known`."""
    return [state for state in await venue.open_orders() if state.client_order_id not in known]


def balance_differences(
    ours: Mapping[str, Decimal], venue: Mapping[str, Decimal]
) -> dict[str, tuple[Decimal, Decimal]]:
    """Asset -> (our total, the venue's) where they differ; an asset one side lacks counts
    as zero there."""
    zero = Decimal(0)
    return {
        asset: (ours.get(asset, zero), venue.get(asset, zero))
        for asset in sorted(set(ours) | set(venue))
        if ours.get(asset, zero) != venue.get(asset, zero)
    }
