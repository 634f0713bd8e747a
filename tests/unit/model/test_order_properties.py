"""Property: whatever a venue sends, in whatever order, duplicated or not, the order stays
valid. Reports the machine refuses raise InvalidTransition and change nothing; the ones it
takes keep the quantities consistent, and a final order stays as it is."""

from decimal import Decimal

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.model.order_builders import (
    accepted,
    cancel_rejected,
    cancel_requested,
    cancelled,
    expired,
    filled,
    new_order,
    rejected,
    state,
)
from veloz.model.enums import OrderStatus
from veloz.model.errors import InvalidTransition
from veloz.model.events import OrderEvent, OrderFilled

D = Decimal
STEP = D("0.1")

trade_ids = st.sampled_from([f"T-{n}" for n in range(8)])  # few ids: repeats are common
fills = st.builds(
    lambda units, cents, trade_id, fee_asset: filled(
        units * STEP,
        D(cents).scaleb(-2),
        trade_id,
        fee=D(units).scaleb(-4),
        fee_asset=fee_asset,
    ),
    st.integers(1, 6),
    st.integers(1, 10**7),
    trade_ids,
    st.sampled_from(["USDT", "USDT", "USDT", "BNB"]),
)
OTHER_REPORTS: dict[str, OrderEvent] = {
    "accepted": accepted(),
    "cancel_requested": cancel_requested(),
    "cancel_rejected": cancel_rejected(),
    "cancelled": cancelled(),
    "expired": expired(),
    "rejected": rejected(),
}
# Fills are weighted up so that sequences often reach FILLED before a terminal report.
reports = st.sampled_from(["fill"] * 12 + sorted(OTHER_REPORTS)).flatmap(
    lambda kind: fills if kind == "fill" else st.just(OTHER_REPORTS[kind])
)
sequences = st.lists(
    st.tuples(reports, st.integers(1, 10**6)),  # each report gets its own timestamp
    max_size=40,
)


def _stamped(report: OrderEvent, ts_ns: int) -> OrderEvent:
    return msgspec.structs.replace(report, ts_ns=ts_ns)


@settings(max_examples=500, deadline=None)
@given(order_units=st.integers(1, 12), sequence=sequences)
def test_any_sequence_of_venue_reports_leaves_a_valid_order(order_units, sequence):
    order = new_order(qty=order_units * STEP)
    applied_fill_qty = D(0)
    applied_trade_ids: list[str] = []
    final_state = None
    for report, ts_ns in sequence:
        event = _stamped(report, ts_ns)
        before = state(order)
        try:
            order.apply(event)
        except InvalidTransition:
            assert state(order) == before  # refused: nothing changed
        else:
            if isinstance(event, OrderFilled):
                applied_fill_qty += event.qty
                applied_trade_ids.append(event.trade_id)

        assert order.status in set(OrderStatus)
        assert 0 <= order.executed_qty <= order.order_qty
        assert order.executed_qty == applied_fill_qty
        assert order.trade_ids == applied_trade_ids
        assert len(set(order.trade_ids)) == len(order.trade_ids)
        assert (order.status is OrderStatus.FILLED) == (order.executed_qty == order.order_qty)
        assert 0 <= order.leaves_qty <= order.order_qty
        assert order.fee >= 0
        if order.executed_qty:
            assert order.avg_price == order.cum_quote / order.executed_qty
        else:
            assert order.avg_price is None and order.cum_quote == 0
        if final_state is not None:
            # A final order never changes again (its last_ts_ns aside: see the xfail in
            # test_order_fills.py).
            now = state(order)
            now.pop("last_ts_ns")
            assert now == final_state
        elif order.is_final:
            final_state = state(order)
            final_state.pop("last_ts_ns")


@settings(max_examples=200, deadline=None)
@given(sequence=sequences)
def test_reports_for_another_order_are_always_refused(sequence):
    order = new_order()
    before = state(order)
    for report, ts_ns in sequence:
        stray = _stamped(report, ts_ns)
        try:
            order.apply(_for_other_order(stray))
        except InvalidTransition as refused:
            assert refused.code == "mismatched_order"
        else:
            raise AssertionError(f"{stray} for another order was applied")
    assert state(order) == before


def _for_other_order(event: OrderEvent) -> OrderEvent:
    return msgspec.structs.replace(event, client_order_id="other-order")
