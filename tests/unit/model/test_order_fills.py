"""Fills and cancel rejections on a single order: quantities, average price, fees, and the
reports the state machine refuses (overfill, duplicate trade, mixed fee assets)."""

from decimal import Decimal

import pytest

from tests.unit.model.order_builders import (
    accepted,
    cancel_rejected,
    cancel_requested,
    filled,
    new_order,
    order_in,
    state,
    status_of,
)
from veloz.model.enums import OrderStatus
from veloz.model.errors import InvalidTransition
from veloz.model.events import OrderFilled

D = Decimal
S = OrderStatus


def test_partial_fill_then_completing_fill():
    order = order_in(S.ACCEPTED)
    order.apply(filled("0.3", "100", "T-1"))
    assert order.status is S.PARTIALLY_FILLED
    assert order.executed_qty == D("0.3") and order.leaves_qty == D("0.7")
    order.apply(filled("0.7", "100", "T-2"))
    assert status_of(order) is S.FILLED and order.is_final
    assert order.executed_qty == D("1") and order.leaves_qty == 0
    assert order.trade_ids == ["T-1", "T-2"]


def test_single_fill_of_the_whole_quantity_fills_at_once():
    order = order_in(S.ACCEPTED)
    order.apply(filled("1", "99.5"))
    assert order.status is S.FILLED and order.avg_price == D("99.5")


def test_a_fill_before_the_ack_makes_the_order_partially_filled():
    order = new_order()
    order.apply(filled("0.5"))
    assert order.status is S.PARTIALLY_FILLED
    order.apply(accepted())
    assert order.status is S.PARTIALLY_FILLED and order.venue_order_id == "V-1"


def test_fill_during_pending_cancel_stays_pending_cancel_unless_complete():
    order = order_in(S.PENDING_CANCEL)
    order.apply(filled("0.4", trade_id="T-1"))
    assert order.status is S.PENDING_CANCEL and order.executed_qty == D("0.4")
    order.apply(filled("0.6", trade_id="T-2"))
    assert status_of(order) is S.FILLED


def test_average_price_is_cumulative_quote_over_executed_quantity():
    order = order_in(S.ACCEPTED)
    order.apply(filled("0.3", "100", "T-1"))
    order.apply(filled("0.2", "110", "T-2"))
    assert order.cum_quote == D("52.0")
    assert order.avg_price == D("104")
    order.apply(filled("0.5", "90.01", "T-3"))
    assert order.cum_quote == D("97.005")
    assert order.avg_price == order.cum_quote / order.executed_qty == D("97.005")


def test_fees_accumulate_in_one_asset():
    order = order_in(S.ACCEPTED)
    order.apply(filled("0.2", fee="0.01", fee_asset="BNB", trade_id="T-1"))
    order.apply(filled("0.3", fee="0.025", fee_asset="BNB", trade_id="T-2"))
    assert order.fee == D("0.035") and order.fee_asset == "BNB"


def test_fees_in_a_different_asset_are_refused():
    order = order_in(S.ACCEPTED)
    order.apply(filled("0.2", fee="0.01", fee_asset="BNB", trade_id="T-1"))
    before = state(order)
    with pytest.raises(InvalidTransition, match="charges fees in USDT") as refused:
        order.apply(filled("0.2", fee="0.5", fee_asset="USDT", trade_id="T-2"))
    assert refused.value.code == "illegal_transition"
    assert state(order) == before


def test_a_zero_fee_fill_in_another_asset_is_fine_and_keeps_the_fee_asset():
    order = order_in(S.ACCEPTED)
    order.apply(filled("0.2", fee="0.01", fee_asset="BNB", trade_id="T-1"))
    order.apply(filled("0.2", fee="0", fee_asset="USDT", trade_id="T-2"))
    assert order.fee == D("0.01") and order.fee_asset == "BNB"
    assert order.executed_qty == D("0.4")


def test_zero_fee_fills_leave_the_fee_asset_unset():
    order = order_in(S.ACCEPTED)
    order.apply(filled("0.2", fee="0", fee_asset="USDT"))
    assert order.fee == 0 and order.fee_asset is None


@pytest.mark.parametrize("status", [S.ACCEPTED, S.PARTIALLY_FILLED, S.PENDING_CANCEL])
def test_overfill_is_refused_and_changes_nothing(status: OrderStatus):
    order = order_in(status)
    leaves = order.order_qty - order.executed_qty
    before = state(order)
    with pytest.raises(InvalidTransition) as refused:
        order.apply(filled(leaves + D("0.00000001"), trade_id="T-over"))
    assert refused.value.code == "overfill"
    assert state(order) == before
    order.apply(filled(leaves, trade_id="T-exact"))  # exactly the remainder is fine
    assert order.status is S.FILLED


def test_duplicate_trade_id_is_refused_and_changes_nothing():
    order = order_in(S.ACCEPTED)
    order.apply(filled("0.2", trade_id="T-1"))
    before = state(order)
    with pytest.raises(InvalidTransition) as refused:
        order.apply(filled("0.2", "101", trade_id="T-1"))
    assert refused.value.code == "duplicate_trade"
    assert state(order) == before


@pytest.mark.parametrize(
    ("qty", "price", "fee"),
    [
        ("0", "100", "0"),
        ("-0.1", "100", "0"),
        ("0.1", "0", "0"),
        ("0.1", "-1", "0"),
        ("0.1", "100", "-0.01"),
    ],
)
def test_non_positive_quantities_prices_and_negative_fees_are_refused(qty, price, fee):
    order = order_in(S.ACCEPTED)
    before = state(order)
    with pytest.raises(InvalidTransition) as refused:
        order.apply(filled(qty, price, fee=fee))
    assert refused.value.code == "illegal_transition"
    assert state(order) == before


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ([], S.PENDING_NEW),  # cancel asked before the venue acked: still waiting on the ack
        ([accepted()], S.ACCEPTED),
        ([accepted(), filled("0.25")], S.PARTIALLY_FILLED),
        ([filled("0.25")], S.PARTIALLY_FILLED),  # filled before any ack
    ],
    ids=["pending_new", "accepted", "partially_filled", "filled_before_ack"],
)
def test_cancel_rejected_returns_to_the_working_status(path: list[OrderFilled], expected):
    order = new_order()
    for event in path:
        order.apply(event)
    order.apply(cancel_requested())
    assert order.status is S.PENDING_CANCEL
    order.apply(cancel_rejected(reason="unknown order"))
    assert order.status is expected
    assert order.reason == "unknown order"


@pytest.mark.parametrize("status", [S.ACCEPTED, S.PARTIALLY_FILLED, S.PENDING_NEW])
def test_cancel_rejected_without_a_pending_cancel_keeps_status_and_reason(status):
    order = order_in(status)
    order.apply(cancel_rejected(reason="stale"))
    assert order.status is status and order.reason == ""


FINAL = [S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED]


@pytest.mark.parametrize("status", FINAL)
def test_cancel_rejected_on_a_final_order_changes_no_trading_state(status: OrderStatus):
    order = order_in(status)
    before = state(order)
    order.apply(cancel_rejected(ts_ns=10**18, reason="too late: order is final"))
    after = state(order)
    before.pop("last_ts_ns")
    after.pop("last_ts_ns")
    assert after == before


def test_cancel_rejected_on_a_final_order_is_a_complete_no_op():
    order = order_in(S.FILLED)
    before = state(order)
    order.apply(cancel_rejected(ts_ns=10**18))
    assert state(order) == before
