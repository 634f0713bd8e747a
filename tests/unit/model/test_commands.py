"""Parsing SubmitOrder / CancelOrder from loosely typed fields (JSON, forms, stdio lines):
what is accepted and normalised, and what is refused with bad_params naming the field."""

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veloz.model.commands import (
    MAX_DECIMAL_DIGITS,
    CancelOrder,
    SubmitOrder,
    parse_cancel_order,
    parse_positive_decimal,
    parse_submit_order,
)
from veloz.model.enums import OrderSide, OrderType, TimeInForce
from veloz.model.errors import CommandRejected

D = Decimal


def limit_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"symbol": "BTCUSDT", "side": "BUY", "qty": "0.5", "price": "50000"}
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not ...}


def market_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"symbol": "BTCUSDT", "side": "SELL", "qty": "0.5", "type": "MARKET"}
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not ...}


def refused(fields: dict[str, Any]) -> CommandRejected:
    with pytest.raises(CommandRejected) as caught:
        parse_submit_order(fields)
    assert caught.value.code == "bad_params"
    return caught.value


# -- accepted forms ----------------------------------------------------------------------


def test_a_limit_order_with_string_numbers():
    command = parse_submit_order(limit_fields(client_order_id="c-1", strategy_id="grid"))
    assert command == SubmitOrder(
        symbol="BTCUSDT",
        side=OrderSide.BUY,
        qty=D("0.5"),
        price=D("50000"),
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        client_order_id="c-1",
        strategy_id="grid",
    )


@pytest.mark.parametrize(
    ("qty", "price", "expected_qty", "expected_price"),
    [
        (0.1, 50000.5, "0.1", "50000.5"),  # floats through their shortest repr, not binary
        (2, 50000, "2", "50000"),
        ("0.10", "50000.00", "0.10", "50000.00"),
        (" 0.3 ", " 7 ", "0.3", "7"),
        (D("0.25"), D("1.5"), "0.25", "1.5"),
        ("1e-3", "5E+4", "0.001", "50000"),
    ],
)
def test_qty_and_price_as_numbers_or_strings(qty, price, expected_qty, expected_price):
    command = parse_submit_order(limit_fields(qty=qty, price=price))
    assert command.qty == D(expected_qty) and command.price == D(expected_price)
    assert isinstance(command.qty, Decimal) and isinstance(command.price, Decimal)


def test_float_is_read_through_its_repr_and_strings_keep_their_digits():
    assert parse_submit_order(limit_fields(qty=0.1)).qty.as_tuple() == D("0.1").as_tuple()
    command = parse_submit_order(limit_fields(qty="0.10", price="50000.00"))
    assert str(command.qty) == "0.10" and str(command.price) == "50000.00"


def test_lowercase_side_type_tif_and_symbol_are_normalised():
    command = parse_submit_order(
        {
            "symbol": "btcusdt",
            "side": "sell",
            "qty": 1,
            "price": 2,
            "type": "limit",
            "time_in_force": "ioc",
        }
    )
    assert command.symbol == "BTCUSDT"
    assert command.side is OrderSide.SELL
    assert command.order_type is OrderType.LIMIT
    assert command.time_in_force is TimeInForce.IOC


def test_order_type_is_accepted_under_either_name():
    assert parse_submit_order(market_fields(type=..., order_type="market")).order_type is (
        OrderType.MARKET
    )


def test_market_defaults_to_ioc():
    command = parse_submit_order(market_fields())
    assert command.order_type is OrderType.MARKET
    assert command.time_in_force is TimeInForce.IOC
    assert command.price is None


@pytest.mark.parametrize("tif", ["IOC", "FOK", "fok"])
def test_market_with_ioc_or_fok(tif):
    assert parse_submit_order(market_fields(time_in_force=tif)).time_in_force is TimeInForce(
        tif.upper()
    )


def test_market_with_an_empty_price_is_a_market_order_without_price():
    assert parse_submit_order(market_fields(price="")).price is None


def test_limit_defaults_to_gtc_and_no_client_order_id():
    command = parse_submit_order(limit_fields())
    assert command.time_in_force is TimeInForce.GTC
    assert command.client_order_id is None and command.strategy_id is None


def test_the_cmd_field_of_a_stdio_json_line_is_allowed():
    assert parse_submit_order(limit_fields(cmd="order")).qty == D("0.5")


@pytest.mark.parametrize("coid", ["a", "A" * 36, "Az09._:/-", "x-1:2/3.4_5"])
def test_valid_client_order_ids(coid):
    assert parse_submit_order(limit_fields(client_order_id=coid)).client_order_id == coid
    assert parse_cancel_order({"client_order_id": coid}).client_order_id == coid


def test_max_digits_is_inclusive():
    thirty = "1" * 12 + "." + "1" * (MAX_DECIMAL_DIGITS - 12)
    assert parse_positive_decimal(thirty, "qty") == D(thirty)
    assert parse_positive_decimal("0." + "1" * MAX_DECIMAL_DIGITS, "qty") > 0


# -- refused -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ok"), [("9" * 12, True), ("1" + "0" * 12, False), ("1e-12", True), ("9e-13", False)]
)
def test_magnitude_bounds(text, ok):
    if ok:
        assert parse_positive_decimal(text, "qty") == D(text)
    else:
        with pytest.raises(CommandRejected, match="between 1e-12 and 1e12"):
            parse_positive_decimal(text, "qty")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        (market_fields(time_in_force="GTC"), "time_in_force"),
        (market_fields(price="50000"), "price"),
        (market_fields(price=50000), "price"),
        (limit_fields(price=...), "price"),
        (limit_fields(price=None), "price"),
        (limit_fields(price=""), "price"),
        (limit_fields(qty=...), "qty"),
        (limit_fields(qty=""), "qty"),
        (limit_fields(symbol=...), "symbol"),
        (limit_fields(symbol=""), "symbol"),
        (limit_fields(symbol=5), "symbol"),
        (limit_fields(side=...), "side"),
        (limit_fields(side="LONG"), "side"),
        (limit_fields(side=True), "side"),
        (limit_fields(type="STOP"), "type"),
        (limit_fields(type=1), "type"),
        (limit_fields(order_type="STOP_LIMIT"), "type"),
        (limit_fields(time_in_force="GTD"), "time_in_force"),
        (limit_fields(time_in_force=0), "time_in_force"),
        (limit_fields(strategy_id=""), "strategy_id"),
        (limit_fields(strategy_id="s" * 65), "strategy_id"),
        (limit_fields(strategy_id=7), "strategy_id"),
        (limit_fields(client_order_id=12), "client_order_id"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(fields, field):
    assert field in refused(fields).message


@pytest.mark.parametrize("name", ["qty", "price"])
@pytest.mark.parametrize(
    "value",
    [
        0,
        "0",
        "0.000",
        -1,
        "-0.5",
        "-0",
        0.0,
        -0.0,
        -1e-9,
        "NaN",
        "nan",
        "sNaN",
        "Infinity",
        "-Infinity",
        "inf",
        float("nan"),
        float("inf"),
        float("-inf"),
        True,
        False,
        "abc",
        "1,5",
        "0x10",
        "1 2",
        [],
        {},
        b"1",
        "1" * (MAX_DECIMAL_DIGITS + 1),
        "0." + "1" * MAX_DECIMAL_DIGITS + "1",
        10**MAX_DECIMAL_DIGITS,
    ],
)
def test_bad_numbers_are_refused_naming_the_field(name, value):
    assert name in refused(limit_fields(**{name: value})).message


@pytest.mark.parametrize(
    "coid",
    ["A" * 37, "has space", "tab\there", "ünïcödé", "emoji-🙂", "semi;colon", "a+b", "a@b", "#1"],
)
def test_bad_client_order_ids_are_refused(coid):
    assert "client_order_id" in refused(limit_fields(client_order_id=coid)).message
    with pytest.raises(CommandRejected) as caught:
        parse_cancel_order({"client_order_id": coid})
    assert caught.value.code == "bad_params"
    assert "client_order_id" in caught.value.message


def test_unknown_fields_are_refused_naming_them():
    message = refused(limit_fields(stopPrice="1", iceberg=True)).message
    assert "iceberg" in message and "stopPrice" in message


def test_parse_cancel_order():
    assert parse_cancel_order({"client_order_id": " c-1 ", "symbol": "ethusdt"}) == CancelOrder(
        client_order_id="c-1", symbol="ETHUSDT"
    )
    assert parse_cancel_order({"cmd": "cancel", "client_order_id": "c-1"}).symbol is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({}, "client_order_id"),
        ({"client_order_id": ""}, "client_order_id"),
        ({"client_order_id": 5}, "client_order_id"),
        ({"client_order_id": "c-1", "symbol": 5}, "symbol"),
        ({"client_order_id": "c-1", "qty": "1"}, "qty"),
    ],
)
def test_parse_cancel_order_refusals(fields, field):
    with pytest.raises(CommandRejected) as caught:
        parse_cancel_order(fields)
    assert caught.value.code == "bad_params"
    assert field in caught.value.message


# -- parse_positive_decimal over arbitrary input -----------------------------------------

numberish_text = st.from_regex(
    r"\A\s?[-+]?\d{0,35}(\.\d{0,35})?([eE][-+]?\d{1,20})?\s?\Z", fullmatch=True
)
arbitrary = st.one_of(
    st.text(),
    numberish_text,
    st.integers(),
    st.integers(min_value=-(10**60), max_value=10**60),
    st.floats(),
    st.decimals(),
)


@settings(max_examples=1000, deadline=None)
@given(value=arbitrary)
def test_parse_positive_decimal_accepts_or_refuses_with_command_rejected(value):
    try:
        number = parse_positive_decimal(value, "qty")
    except CommandRejected as exc:
        assert exc.code == "bad_params"
        assert "qty" in exc.message
    else:
        assert isinstance(number, Decimal)
        assert number.is_finite() and number > 0
        assert len(number.as_tuple().digits) <= MAX_DECIMAL_DIGITS


def test_parse_positive_decimal_refuses_a_huge_int_with_command_rejected():
    with pytest.raises(CommandRejected, match="more than 30 significant digits"):
        parse_positive_decimal(10**5000, "qty")


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        # Longer than the digits limit as text, within it as digits: counted, accepted.
        ("  0.00000000001000000000000000000  ", True),
        (" " * 40 + "5", True),
        ("1." + "0" * 30, False),  # 31 digits: trailing zeros are significant
        (10**MAX_DECIMAL_DIGITS - 1, False),  # 30 digits, but 1e29 is out of range
        (Decimal("1." + "0" * 30), False),  # a Decimal is always counted
    ],
)
def test_digits_are_counted_when_the_text_could_hold_too_many(value, ok):
    if ok:
        assert parse_positive_decimal(value, "qty") == Decimal(str(value).strip())
    else:
        with pytest.raises(CommandRejected, match=r"significant digits|between"):
            parse_positive_decimal(value, "qty")


def test_an_empty_value_is_missing_and_a_blank_one_is_not_a_number():
    with pytest.raises(CommandRejected, match="qty is required"):
        parse_positive_decimal("", "qty")
    with pytest.raises(CommandRejected, match="qty must be a number, got '   '"):
        parse_positive_decimal("   ", "qty")
