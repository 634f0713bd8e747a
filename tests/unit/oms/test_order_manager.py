"""The OrderManager: idempotent client order ids, status indexes kept in step with every
applied event, bounded retention of final orders, checkpoint snapshot and restore."""

from collections import Counter
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.model.order_builders import (
    accepted,
    cancel_rejected,
    cancel_requested,
    cancelled,
    expired,
    filled,
    rejected,
    state,
    submitted,
)
from veloz.codec import decode_msgpack, encode_msgpack
from veloz.model.enums import FINAL_STATUSES, OPEN_STATUSES, OrderSide, OrderStatus
from veloz.model.errors import CommandRejected, InvalidTransition
from veloz.model.events import OrderSubmitted
from veloz.model.orders import Order
from veloz.model.sizes import deep_size
from veloz.oms.manager import OrderManager

S = OrderStatus


def assert_indexes_consistent(oms: OrderManager) -> None:
    """The status index, counts and open count agree with the orders themselves."""
    orders = oms.all_orders()
    assert len(oms) == len(orders) == len({o.client_order_id for o in orders})
    by_status = Counter(o.status for o in orders)
    assert oms.counts() == {status: by_status.get(status, 0) for status in OrderStatus}
    for status in OrderStatus:
        listed = oms.with_status([status])
        assert all(o.status is status for o in listed)
        assert {o.client_order_id for o in listed} == {
            o.client_order_id for o in orders if o.status is status
        }
    assert oms.open_count() == sum(by_status[s] for s in OPEN_STATUSES)
    # The running exposure totals the risk checks read agree with a recount.
    for symbol in {o.symbol for o in orders} | {"BTCUSDT"}:
        live = [o for o in orders if o.symbol == symbol and not o.is_final]
        assert oms.open_count(symbol) == len(live)
        for side in OrderSide:
            recount = sum((o.leaves_qty for o in live if o.side is side), Decimal(0))
            assert oms.open_qty(symbol, side) == recount
    assert {o.client_order_id for o in oms.open_orders()} == {
        o.client_order_id for o in orders if not o.is_final
    }
    for order in orders:
        assert oms.get(order.client_order_id) is order


def get(oms: OrderManager, client_order_id: str) -> Order:
    order = oms.get(client_order_id)
    assert order is not None, client_order_id
    return order


def book(*client_order_ids: str, retained_final: int = 100) -> OrderManager:
    oms = OrderManager(retained_final)
    for coid in client_order_ids:
        oms.add(submitted(coid))
    return oms


# -- idempotency -------------------------------------------------------------------------


def test_existing_for_a_new_id_is_none():
    assert book("a").existing_for(submitted("b")) is None


def test_existing_for_the_same_request_returns_the_order():
    oms = book("a")
    assert oms.existing_for(submitted("a", ts_ns=999)) is oms.get("a")


@pytest.mark.parametrize(
    "different",
    [
        submitted("a", qty="2"),
        submitted("a", price="101"),
        submitted("a", symbol="ETHUSDT"),
        submitted("a", price=None),
        submitted("a", strategy_id="other"),
    ],
)
def test_existing_for_a_different_request_is_refused(different):
    oms = book("a")
    with pytest.raises(CommandRejected) as refused:
        oms.existing_for(different)
    assert refused.value.code == "duplicate_client_order_id"
    assert "a" in refused.value.message


def test_existing_for_also_finds_final_orders():
    oms = book("a")
    oms.apply(rejected("a"))
    assert oms.existing_for(submitted("a")) is oms.get("a")


def test_adding_an_existing_id_is_refused_and_changes_nothing():
    oms = book("a")
    oms.apply(accepted("a"))
    before = state(get(oms, "a"))
    with pytest.raises(InvalidTransition) as refused:
        oms.add(submitted("a"))
    assert refused.value.code == "duplicate_order"
    assert state(get(oms, "a")) == before and len(oms) == 1
    assert_indexes_consistent(oms)


def test_add_returns_a_pending_new_order_indexed_as_open():
    oms = OrderManager()
    order = oms.add(submitted("a"))
    assert order is oms.get("a") and order.status is S.PENDING_NEW
    assert oms.open_count() == 1 and oms.counts()[S.PENDING_NEW] == 1
    assert_indexes_consistent(oms)


# -- applying ----------------------------------------------------------------------------


def test_apply_to_an_unknown_order_is_refused():
    oms = book("a")
    with pytest.raises(InvalidTransition) as refused:
        oms.apply(accepted("nope"))
    assert refused.value.code == "unknown_order"
    with pytest.raises(InvalidTransition):
        oms.check(accepted("nope"))


def test_a_refused_event_leaves_the_indexes_alone():
    oms = book("a")
    oms.apply(accepted("a"))
    with pytest.raises(InvalidTransition):
        oms.apply(rejected("a"))
    assert get(oms, "a").status is S.ACCEPTED
    assert_indexes_consistent(oms)


def test_indexes_follow_every_status_change():
    oms = book("new", "acc", "part", "full", "pc", "can", "rej", "exp")
    for coid in ("acc", "part", "full", "pc", "can", "exp"):
        oms.apply(accepted(coid))
    oms.apply(filled("0.5", coid="part"))
    oms.apply(filled("1", coid="full"))
    oms.apply(cancel_requested("pc"))
    oms.apply(cancelled("can"))
    oms.apply(rejected("rej"))
    oms.apply(expired("exp"))
    assert_indexes_consistent(oms)
    assert {s: n for s, n in oms.counts().items() if n} == {s: 1 for s in OrderStatus}
    assert oms.open_count() == 4
    assert [o.client_order_id for o in oms.with_status([S.FILLED, S.REJECTED])] == [
        "full",
        "rej",
    ]
    oms.apply(cancel_rejected("pc"))
    oms.apply(cancel_rejected("full"))  # informational on a final order
    assert get(oms, "pc").status is S.ACCEPTED
    assert oms.counts()[S.PENDING_CANCEL] == 0 and oms.counts()[S.ACCEPTED] == 2
    assert_indexes_consistent(oms)


def test_apply_returns_the_changed_order():
    oms = book("a")
    order = oms.apply(accepted("a"))
    assert order is oms.get("a") and order.status is S.ACCEPTED


# -- retention ---------------------------------------------------------------------------


def test_eviction_keeps_the_newest_final_orders_and_every_open_one():
    oms = OrderManager(retained_final=3)
    for n in range(10):
        oms.add(submitted(f"open-{n}"))
        oms.add(submitted(f"final-{n}"))
        oms.apply(cancelled(f"final-{n}"))
        assert len(oms.with_status(FINAL_STATUSES)) <= 3
        assert_indexes_consistent(oms)
    assert {o.client_order_id for o in oms.with_status(FINAL_STATUSES)} == {
        "final-7",
        "final-8",
        "final-9",
    }
    assert oms.open_count() == 10
    assert oms.get("final-6") is None and oms.get("open-0") is not None


def test_eviction_is_by_when_orders_became_final_not_when_they_were_added():
    oms = book("first", "second", "third", retained_final=2)
    oms.apply(cancelled("third"))
    oms.apply(cancelled("first"))
    oms.apply(cancelled("second"))  # "third" became final first: it goes
    assert oms.get("third") is None
    assert oms.get("first") is not None and oms.get("second") is not None
    assert_indexes_consistent(oms)


def test_no_final_order_is_retained_with_zero_retention():
    oms = book("a", "b", retained_final=0)
    oms.apply(filled("1", coid="a"))
    assert oms.get("a") is None and oms.get("b") is not None
    assert_indexes_consistent(oms)


# -- snapshot, restore, forget ----------------------------------------------------------


def busy_book() -> OrderManager:
    oms = book(*[f"o-{n}" for n in range(8)])
    oms.apply(accepted("o-1"))
    oms.apply(filled("0.25", coid="o-2", trade_id="T-2", fee="0.01"))
    oms.apply(accepted("o-3"))
    oms.apply(cancel_requested("o-3"))
    oms.apply(cancelled("o-4"))  # final, oldest
    oms.apply(rejected("o-5"))
    oms.apply(filled("1", coid="o-6", trade_id="T-6"))
    oms.apply(expired("o-7"))  # final, newest
    return oms


def test_snapshot_holds_open_orders_then_final_ones_in_the_order_they_became_final():
    oms = busy_book()
    ids = [o.client_order_id for o in oms.snapshot()]
    assert set(ids[:4]) == {"o-0", "o-1", "o-2", "o-3"}
    assert ids[4:] == ["o-4", "o-5", "o-6", "o-7"]


def test_restore_round_trips_through_a_checkpoint_payload():
    oms = busy_book()
    payload = encode_msgpack(oms.snapshot())
    restored = OrderManager()
    restored.restore(decode_msgpack(payload, list[Order]))
    assert {o.client_order_id: state(o) for o in restored.all_orders()} == {
        o.client_order_id: state(o) for o in oms.all_orders()
    }
    assert restored.counts() == oms.counts()
    assert_indexes_consistent(restored)
    # The restored book keeps working: final order order is preserved for eviction.
    assert [o.client_order_id for o in restored.snapshot()][-2:] == ["o-6", "o-7"]
    restored.apply(filled("0.75", coid="o-2", trade_id="T-3"))
    assert get(restored, "o-2").status is S.FILLED
    with pytest.raises(InvalidTransition) as refused:
        restored.apply(filled("0.1", coid="o-2", trade_id="T-2"))
    assert refused.value.code == "duplicate_trade"  # T-2 was applied before the checkpoint
    assert_indexes_consistent(restored)


def test_restore_replaces_whatever_was_there():
    oms = book("stale")
    oms.restore([Order.from_submitted(submitted("fresh"))])
    assert oms.get("stale") is None and oms.get("fresh") is not None
    assert len(oms) == 1
    assert_indexes_consistent(oms)


@pytest.mark.parametrize("final", [False, True])
def test_forget_removes_the_order_from_every_index(final):
    oms = book("a", "b", retained_final=1)
    if final:
        oms.apply(cancelled("a"))
    oms.forget("a")
    assert oms.get("a") is None and len(oms) == 1
    assert all(o.client_order_id != "a" for o in oms.snapshot())
    assert_indexes_consistent(oms)
    oms.add(submitted("a"))  # the id is free again
    assert_indexes_consistent(oms)


def test_forget_an_unknown_id_is_a_no_op():
    oms = book("a")
    oms.forget("nope")
    assert len(oms) == 1
    assert_indexes_consistent(oms)


def test_eviction_after_forgetting_a_final_order():
    oms = book("a", "b", "c", retained_final=1)
    oms.apply(cancelled("a"))
    oms.forget("a")
    oms.apply(cancelled("b"))
    oms.apply(cancelled("c"))
    assert oms.get("b") is None and oms.get("c") is not None
    assert_indexes_consistent(oms)


# -- property: any events on any orders --------------------------------------------------

IDS = [f"p-{n}" for n in range(5)]
events = st.one_of(
    st.builds(accepted, st.sampled_from(IDS)),
    st.builds(rejected, st.sampled_from(IDS)),
    st.builds(cancel_requested, st.sampled_from(IDS)),
    st.builds(cancel_rejected, st.sampled_from(IDS)),
    st.builds(cancelled, st.sampled_from(IDS)),
    st.builds(expired, st.sampled_from(IDS)),
    st.builds(
        lambda coid, qty, trade: filled(qty, coid=coid, trade_id=trade),
        st.sampled_from(IDS),
        st.sampled_from(["0.25", "0.5", "1"]),
        st.sampled_from(["T-1", "T-2", "T-3"]),
    ),
    st.builds(submitted, st.sampled_from(IDS)),
)


@settings(max_examples=300, deadline=None)
@given(retained=st.integers(0, 3), sequence=st.lists(events, max_size=40))
def test_any_event_sequence_keeps_the_book_consistent(retained, sequence):
    oms = OrderManager(retained)
    for event in sequence:
        was_open = {o.client_order_id for o in oms.open_orders()}
        try:
            if isinstance(event, OrderSubmitted):
                if oms.existing_for(event) is None:
                    oms.add(event)
            else:
                oms.apply(event)
        except InvalidTransition:
            pass
        assert_indexes_consistent(oms)
        assert len(oms.with_status(FINAL_STATUSES)) <= retained
        still_known = {o.client_order_id for o in oms.all_orders()}
        newly_final = {o.client_order_id for o in oms.with_status(FINAL_STATUSES)}
        # Open orders are never evicted: an order open before the event is still known
        # unless this very event made it final (and retention then dropped it).
        assert was_open - still_known <= {event.client_order_id} - newly_final


def test_a_byte_budget_bounds_the_retained_final_orders_never_the_open_ones():
    sample = book("sample")
    sample.apply(cancelled("sample"))
    one = deep_size(get(sample, "sample"))
    oms = OrderManager(retained_final=1_000, retained_final_bytes=one * 10)
    for n in range(300):
        oms.add(submitted(f"open-{n}"))
        oms.add(submitted(f"final-{n}"))
        oms.apply(cancelled(f"final-{n}"))
    final = oms.with_status(FINAL_STATUSES)
    assert 5 <= len(final) <= 10 and oms.open_count() == 300
    assert oms.final_bytes_used <= one * 10 * 1.1  # an estimate, within its sampling error
    assert oms.get("final-299") is not None and oms.get("final-0") is None
    assert_indexes_consistent(oms)
