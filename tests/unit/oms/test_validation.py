"""Instrument filters before an order is taken: values exactly on a bound or on the grid
pass; one increment off is refused with bad_params and a message saying which filter."""

from decimal import Decimal

import pytest

from veloz.model.commands import SubmitOrder
from veloz.model.enums import OrderSide, OrderType, TimeInForce
from veloz.model.errors import CommandRejected
from veloz.model.instruments import Instrument
from veloz.oms.validation import validate_against

D = Decimal

TICK = D("0.01")
STEP = D("0.001")
INSTRUMENT = Instrument(
    symbol="BTCUSDT",
    base_asset="BTC",
    quote_asset="USDT",
    price_increment=TICK,
    size_increment=STEP,
    min_qty=D("0.010"),  # ten steps, so one step below is still on the grid
    max_qty=D("100"),
    min_notional=D("10"),
)


def limit(qty: str | Decimal, price: str | Decimal = "2000") -> SubmitOrder:
    return SubmitOrder(symbol="BTCUSDT", side=OrderSide.BUY, qty=D(qty), price=D(price))


def market(qty: str | Decimal) -> SubmitOrder:
    return SubmitOrder(
        symbol="BTCUSDT",
        side=OrderSide.SELL,
        qty=D(qty),
        order_type=OrderType.MARKET,
        time_in_force=TimeInForce.IOC,
    )


def denied(order: SubmitOrder, reference: Decimal | None = None) -> str:
    with pytest.raises(CommandRejected) as caught:
        validate_against(order, INSTRUMENT, reference)
    assert caught.value.code == "bad_params"
    return caught.value.message


@pytest.mark.parametrize(
    "order",
    [
        limit("0.010"),  # min qty exactly
        limit("100"),  # max qty exactly
        limit("0.011"),  # min qty plus one step
        limit("99.999"),  # max qty minus one step
    ],
)
def test_on_the_bounds_and_on_the_grid_is_accepted(order):
    validate_against(order, INSTRUMENT, None)


def test_size_grid():
    validate_against(limit("1.001"), INSTRUMENT, None)
    assert "step 0.001" in denied(limit("1.0005"))
    assert "step" in denied(limit(STEP * 10 + STEP / 10))


def test_qty_below_min_by_one_step_is_refused():
    assert "outside" in denied(limit(INSTRUMENT.min_qty - STEP))


def test_qty_above_max_by_one_step_is_refused():
    assert "outside" in denied(limit(INSTRUMENT.max_qty + STEP))


def test_price_grid():
    validate_against(limit("1", "2000.01"), INSTRUMENT, None)
    assert "tick 0.01" in denied(limit("1", "2000.011"))
    assert "tick" in denied(limit("1", "2000.005"))


def test_notional_exactly_at_the_minimum_is_accepted():
    validate_against(limit("0.010", "1000"), INSTRUMENT, None)  # 0.010 * 1000 = 10
    validate_against(limit("5", "2"), INSTRUMENT, None)  # 5 * 2 = 10


def test_notional_one_tick_below_the_minimum_is_refused():
    assert "notional" in denied(limit("0.010", D("1000") - TICK))  # 9.9999
    assert "notional" in denied(limit("5", D("2") - TICK))  # 9.95


def test_notional_one_step_below_the_minimum_is_refused():
    assert "notional" in denied(limit(D("5") - STEP, "2"))  # 9.998


def test_market_notional_uses_the_reference_price():
    validate_against(market("0.010"), INSTRUMENT, D("1000"))
    assert "notional" in denied(market("0.010"), D("999.99"))


def test_market_reference_need_not_be_on_the_tick_grid():
    validate_against(market("0.011"), INSTRUMENT, D("999.999"))


def test_market_without_a_reference_skips_the_notional_check():
    validate_against(market("0.010"), INSTRUMENT, None)


def test_limit_notional_ignores_the_reference():
    assert "notional" in denied(limit("0.010", "999.99"), D("100000"))


def test_size_is_checked_before_price():
    message = denied(limit("1.0005", "2000.005"))
    assert "step" in message and "tick" not in message


@pytest.mark.parametrize(
    "order",
    [limit("100000000000000000000000000"), limit("1", "1e30")],
    ids=["qty-27-digits", "price-1e30"],
)
def test_huge_values_are_refused_with_command_rejected(order):
    denied(order)
