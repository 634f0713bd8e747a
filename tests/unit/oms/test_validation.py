"""Instrument filters before an order is taken: values exactly on a bound or on the grid
pass unchanged; off the grid they are rounded (size down, price to the passive side); what
rounding cannot make valid is refused with bad_params and the filter named."""

from decimal import Decimal

import msgspec
import pytest

from veloz.model.commands import SubmitOrder
from veloz.model.enums import OrderSide, OrderType, TimeInForce
from veloz.model.errors import CommandRejected
from veloz.model.instruments import Instrument
from veloz.oms.validation import conform

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


def limit(
    qty: str | Decimal, price: str | Decimal = "2000", side: OrderSide = OrderSide.BUY
) -> SubmitOrder:
    return SubmitOrder(symbol="BTCUSDT", side=side, qty=D(qty), price=D(price))


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
        conform(order, INSTRUMENT, reference)
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
def test_on_the_bounds_and_on_the_grid_is_taken_unchanged(order):
    assert conform(order, INSTRUMENT, None) is order


def test_size_off_the_step_is_rounded_down():
    assert conform(limit("1.0005"), INSTRUMENT, None).qty == D("1.000")
    assert conform(limit(STEP * 10 + STEP / 10), INSTRUMENT, None).qty == D("0.010")
    assert conform(limit("1.0019", side=OrderSide.SELL), INSTRUMENT, None).qty == D("1.001")


def test_size_that_rounds_below_the_minimum_is_refused_naming_lot_size():
    assert conform(limit("0.0109"), INSTRUMENT, None).qty == D("0.010")
    message = denied(limit("0.0099"))
    assert "LOT_SIZE" in message and "rounded down" in message


def test_qty_below_min_by_one_step_is_refused():
    assert "LOT_SIZE" in denied(limit(INSTRUMENT.min_qty - STEP))


def test_qty_above_max_by_one_step_is_refused():
    assert "LOT_SIZE" in denied(limit(INSTRUMENT.max_qty + STEP))


def test_price_off_the_tick_rounds_to_the_passive_side():
    assert conform(limit("1", "2000.011"), INSTRUMENT, None).price == D("2000.01")
    assert conform(limit("1", "2000.019"), INSTRUMENT, None).price == D("2000.01")
    sell = limit("1", "2000.011", side=OrderSide.SELL)
    assert conform(sell, INSTRUMENT, None).price == D("2000.02")
    assert conform(limit("1", "2000.01"), INSTRUMENT, None).price == D("2000.01")


def test_a_price_that_rounds_to_zero_is_refused_naming_the_price_filter():
    assert "PRICE_FILTER" in denied(limit("1", "0.001"))


def test_price_bounds_where_the_venue_sets_them():
    bounded = msgspec.structs.replace(INSTRUMENT, min_price=D("100"), max_price=D("5000"))
    assert conform(limit("1", "100"), bounded, None).price == D("100")
    for price in ("99.99", "5000.01"):
        with pytest.raises(CommandRejected, match="PRICE_FILTER"):
            conform(limit("1", price), bounded, None)


def test_notional_exactly_at_the_minimum_is_accepted():
    conform(limit("0.010", "1000"), INSTRUMENT, None)  # 0.010 * 1000 = 10
    conform(limit("5", "2"), INSTRUMENT, None)  # 5 * 2 = 10


def test_notional_one_tick_below_the_minimum_is_refused():
    assert "NOTIONAL" in denied(limit("0.010", D("1000") - TICK))  # 9.9999
    assert "NOTIONAL" in denied(limit("5", D("2") - TICK))  # 9.95


def test_notional_one_step_below_the_minimum_is_refused():
    assert "NOTIONAL" in denied(limit(D("5") - STEP, "2"))  # 9.998


def test_notional_is_checked_after_rounding():
    # 0.0109 * 1000 = 10.9 before, 0.010 * 999.99 = 9.9999 after rounding: refused.
    assert "NOTIONAL" in denied(limit("0.0109", "999.999"))


def test_maximum_notional_where_the_venue_sets_it():
    capped = msgspec.structs.replace(INSTRUMENT, max_notional=D("1000"))
    conform(limit("0.5", "2000"), capped, None)
    assert "above the maximum 1000" in denied_on(capped, limit("0.501", "2000"))
    # Market orders only when the venue says the maximum applies to them.
    conform(market("1"), capped, D("2000"))
    market_capped = msgspec.structs.replace(capped, max_notional_applies_to_market=True)
    assert "NOTIONAL" in denied_on(market_capped, market("1"), D("2000"))


def test_market_notional_uses_the_reference_price():
    conform(market("0.010"), INSTRUMENT, D("1000"))
    assert "NOTIONAL" in denied(market("0.010"), D("999.99"))


def test_market_orders_skip_the_minimum_notional_when_the_venue_says_so():
    lenient = msgspec.structs.replace(INSTRUMENT, min_notional_applies_to_market=False)
    conform(market("0.010"), lenient, D("1"))


def test_market_lot_size_bounds_market_orders_only():
    lot = msgspec.structs.replace(INSTRUMENT, market_min_qty=D("0.1"), market_max_qty=D("1"))
    assert "MARKET_LOT_SIZE" in denied_on(lot, market("0.05"), D("1000"))
    assert "MARKET_LOT_SIZE" in denied_on(lot, market("2"), D("1000"))
    conform(market("0.5"), lot, D("1000"))
    conform(limit("2"), lot, None)  # a limit order keeps LOT_SIZE's bounds


def test_market_reference_need_not_be_on_the_tick_grid():
    conform(market("0.011"), INSTRUMENT, D("999.999"))


def test_market_without_a_reference_skips_the_notional_check():
    conform(market("0.010"), INSTRUMENT, None)


def test_limit_notional_ignores_the_reference():
    assert "NOTIONAL" in denied(limit("0.010", "999.99"), D("100000"))


def test_a_symbol_the_venue_does_not_trade_now_is_refused_as_trading_disabled():
    halted = msgspec.structs.replace(INSTRUMENT, status="HALT")
    with pytest.raises(CommandRejected) as caught:
        conform(limit("1"), halted, None)
    assert caught.value.code == "trading_disabled" and "HALT" in caught.value.message


@pytest.mark.parametrize(
    "order",
    [limit("100000000000000000000000000"), limit("1", "1e30")],
    ids=["qty-27-digits", "price-1e30"],
)
def test_huge_values_are_refused_with_command_rejected(order):
    denied(order)


def denied_on(instrument: Instrument, order: SubmitOrder, reference: Decimal | None = None) -> str:
    with pytest.raises(CommandRejected) as caught:
        conform(order, instrument, reference)
    assert caught.value.code == "bad_params"
    return caught.value.message
