"""`parse_status_filter`: the `?status=` filter of /api/orders_state."""

import pytest

from veloz.model.enums import FINAL_STATUSES, OPEN_STATUSES, OrderStatus
from veloz.model.errors import CommandRejected
from veloz.model.queries import parse_status_filter


@pytest.mark.parametrize("value", [None, ""])
def test_no_filter_means_every_status(value):
    assert parse_status_filter(value) is None


@pytest.mark.parametrize("value", ["open", "OPEN", "Open"])
def test_open(value):
    assert parse_status_filter(value) == OPEN_STATUSES


@pytest.mark.parametrize("value", ["final", "FINAL"])
def test_final(value):
    assert parse_status_filter(value) == FINAL_STATUSES


def test_open_and_final_partition_the_statuses():
    assert set(OrderStatus) == OPEN_STATUSES | FINAL_STATUSES
    assert not OPEN_STATUSES & FINAL_STATUSES


@pytest.mark.parametrize("status", list(OrderStatus))
def test_one_status_in_any_case(status):
    assert parse_status_filter(status.value) == frozenset({status})
    assert parse_status_filter(status.value.lower()) == frozenset({status})


@pytest.mark.parametrize("value", ["opened", "FILL", "pending new", "*", "open,final"])
def test_unknown_filters_are_refused(value):
    with pytest.raises(CommandRejected) as refused:
        parse_status_filter(value)
    assert refused.value.code == "bad_params"
    assert "status" in refused.value.message and "PARTIALLY_FILLED" in refused.value.message
