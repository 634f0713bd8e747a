"""The order state machine, table-driven: every venue report applied in every status. A
legal one moves the order to the status the table names; an illegal one raises
InvalidTransition and leaves the order exactly as it was."""

from collections.abc import Callable

import msgspec
import pytest

from tests.unit.model.order_builders import (
    COID,
    accepted,
    cancel_rejected,
    cancel_requested,
    cancelled,
    expired,
    filled,
    new_order,
    order_in,
    rejected,
    state,
    submitted,
)
from veloz.model.enums import OrderStatus, TimeInForce
from veloz.model.errors import DenialReason, InvalidTransition
from veloz.model.events import OrderDenied, OrderEvent
from veloz.model.orders import Order

S = OrderStatus
X = None  # illegal in that status

EVENTS: dict[str, Callable[[], OrderEvent]] = {
    "accepted": lambda: accepted(ts_ns=100, venue_order_id="V-2"),
    "rejected": lambda: rejected(ts_ns=100),
    "cancel_requested": lambda: cancel_requested(ts_ns=100),
    "cancel_rejected": lambda: cancel_rejected(ts_ns=100),
    "cancelled": lambda: cancelled(ts_ns=100),
    "expired": lambda: expired(ts_ns=100),
    "fill": lambda: filled("0.1", trade_id="T-new", ts_ns=100),
}

# status -> event -> resulting status (X: the event is refused). Order qty 1; the fill is 0.1.
TABLE: dict[OrderStatus, dict[str, OrderStatus | None]] = {
    S.PENDING_NEW: {
        "accepted": S.ACCEPTED,
        "rejected": S.REJECTED,
        "cancel_requested": S.PENDING_CANCEL,
        "cancel_rejected": S.PENDING_NEW,
        "cancelled": S.CANCELLED,
        "expired": S.EXPIRED,
        "fill": S.PARTIALLY_FILLED,
    },
    S.ACCEPTED: {
        "accepted": S.ACCEPTED,
        "rejected": X,
        "cancel_requested": S.PENDING_CANCEL,
        "cancel_rejected": S.ACCEPTED,
        "cancelled": S.CANCELLED,
        "expired": S.EXPIRED,
        "fill": S.PARTIALLY_FILLED,
    },
    S.PARTIALLY_FILLED: {
        "accepted": S.PARTIALLY_FILLED,
        "rejected": X,
        "cancel_requested": S.PENDING_CANCEL,
        "cancel_rejected": S.PARTIALLY_FILLED,
        "cancelled": S.CANCELLED,
        "expired": S.EXPIRED,
        "fill": S.PARTIALLY_FILLED,
    },
    S.PENDING_CANCEL: {  # reached here through an accepted order
        "accepted": S.PENDING_CANCEL,
        "rejected": X,  # a venue rejects only orders it never took
        "cancel_requested": X,
        "cancel_rejected": S.ACCEPTED,
        "cancelled": S.CANCELLED,
        "expired": S.EXPIRED,
        "fill": S.PENDING_CANCEL,
    },
    **{
        final: {name: (final if name == "cancel_rejected" else X) for name in EVENTS}
        for final in (S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED)
    },
}

CASES = [(status, name, TABLE[status][name]) for status in OrderStatus for name in EVENTS]
LEGAL = [case for case in CASES if case[2] is not X]
ILLEGAL = [case[:2] for case in CASES if case[2] is X]


def test_the_table_covers_every_status_and_event():
    assert set(TABLE) == set(OrderStatus)
    assert all(set(row) == set(EVENTS) for row in TABLE.values())


@pytest.mark.parametrize(("status", "event_name", "expected"), LEGAL)
def test_legal_transition(status: OrderStatus, event_name: str, expected: OrderStatus):
    order = order_in(status)
    order.apply(EVENTS[event_name]())
    assert order.status is expected
    assert order.is_final is expected.is_final


@pytest.mark.parametrize(("status", "event_name"), ILLEGAL)
def test_illegal_transition_raises_and_changes_nothing(status: OrderStatus, event_name: str):
    order = order_in(status)
    before = state(order)
    with pytest.raises(InvalidTransition) as refused:
        order.apply(EVENTS[event_name]())
    assert refused.value.code == "illegal_transition"
    assert status.value in refused.value.message
    assert state(order) == before


@pytest.mark.parametrize(("status", "event_name", "expected"), LEGAL)
def test_check_alone_never_changes_the_order(
    status: OrderStatus, event_name: str, expected: OrderStatus
):
    order = order_in(status)
    before = state(order)
    order.check(EVENTS[event_name]())
    assert state(order) == before


@pytest.mark.parametrize(
    "status", [S.PENDING_NEW, S.ACCEPTED, S.PARTIALLY_FILLED, S.PENDING_CANCEL]
)
def test_a_legal_report_advances_last_ts_ns(status: OrderStatus):
    order = order_in(status)
    order.apply(cancelled(ts_ns=10_000))
    assert order.last_ts_ns == 10_000
    order_late = order_in(status)
    order_late.last_ts_ns = 50_000
    order_late.apply(cancelled(ts_ns=10_000))
    assert order_late.last_ts_ns == 50_000  # never goes backwards


def test_from_submitted_starts_pending_new_with_nothing_executed():
    order = Order.from_submitted(submitted(ts_ns=42, strategy_id="s-1"))
    assert order.status is S.PENDING_NEW
    assert order.executed_qty == 0 and order.cum_quote == 0 and order.avg_price is None
    assert order.created_ts_ns == order.last_ts_ns == 42
    assert order.leaves_qty == order.order_qty
    assert order.strategy_id == "s-1"


def test_accepted_records_the_venue_order_id_also_while_a_cancel_is_pending():
    order = order_in(S.PENDING_NEW)
    order.apply(cancel_requested())
    order.apply(accepted(venue_order_id="V-9"))
    assert order.status is S.PENDING_CANCEL and order.venue_order_id == "V-9"


def test_rejected_while_a_cancel_is_pending_on_an_order_the_venue_never_took():
    order = order_in(S.PENDING_NEW)
    order.apply(cancel_requested())
    order.apply(rejected(reason="insufficient_balance"))
    assert order.status is S.REJECTED and order.reason == "insufficient_balance"


def test_terminal_reports_record_their_reason():
    for event, status in (
        (rejected(reason="insufficient balance"), S.REJECTED),
        (cancelled(reason="insufficient balance"), S.CANCELLED),
        (expired(reason="insufficient balance"), S.EXPIRED),
    ):
        order = new_order()
        order.apply(event)
        assert order.status is status and order.reason == "insufficient balance"
        assert order.leaves_qty == 0


def test_an_event_for_another_order_is_refused():
    order = order_in(S.ACCEPTED)
    before = state(order)
    with pytest.raises(InvalidTransition) as refused:
        order.apply(cancelled(coid="someone-else"))
    assert refused.value.code == "mismatched_order"
    assert state(order) == before


@pytest.mark.parametrize(
    "event",
    [
        submitted(),
        OrderDenied(
            client_order_id=COID,
            ts_ns=9,
            symbol="BTCUSDT",
            side=submitted().side,
            qty=submitted().qty,
            price=None,
            reason=DenialReason.MAX_OPEN_ORDERS,
            message="no",
        ),
    ],
    ids=["submitted", "denied"],
)
def test_events_that_are_not_order_reports_are_refused(event: OrderEvent):
    order = order_in(S.ACCEPTED)
    before = state(order)
    with pytest.raises(InvalidTransition, match="not an order report"):
        order.apply(event)
    assert state(order) == before


def test_same_request_compares_every_parameter():
    order = Order.from_submitted(submitted(strategy_id="s"))
    assert order.same_request(submitted(strategy_id="s", ts_ns=99))
    for changed in (
        submitted(strategy_id="s", qty="2"),
        submitted(strategy_id="s", price="101"),
        submitted(strategy_id="s", price=None),
        submitted(strategy_id="s", symbol="ETHUSDT"),
        submitted(strategy_id="s", side=submitted().side.opposite),
        submitted(strategy_id="other"),
        msgspec.structs.replace(submitted(strategy_id="s"), time_in_force=TimeInForce.IOC),
    ):
        assert not order.same_request(changed)
