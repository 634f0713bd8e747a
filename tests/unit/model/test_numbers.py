"""The one rendering rule for decimals going out: plain notation, never an exponent, at
the precision of what each number measures; the values themselves stay exact."""

import re
from decimal import Decimal

import pytest

from veloz.codec import encode_json
from veloz.model.instruments import default_instrument
from veloz.model.numbers import Precisions, plain, ratio, render, show_with

D = Decimal
EXPONENT = re.compile(rb"[:\[,]-?\d+(?:\.\d+)?[eE][+-]?\d")  # a number, not a string


@pytest.fixture
def btc_usdt():
    instruments = {"BTCUSDT": default_instrument("BTCUSDT", D(50000))}  # 0.01 / 0.00001
    show_with(Precisions(instruments, "USDT"))
    yield
    show_with(Precisions())


@pytest.mark.parametrize(
    ("value", "places", "text"),
    [
        ("1E-8", None, "0.00000001"),
        ("1E+2", None, "100"),
        ("0E-8", None, "0.00000000"),
        ("0E+5", None, "0"),
        ("-0E-3", 2, "0.00"),
        ("50050.05005005005005005005005", 2, "50050.05"),
        ("0.125", 2, "0.12"),  # half to even
        ("0.135", 2, "0.14"),
        ("100000", 8, "100000.00000000"),
        ("100000.00000", 8, "100000.00000000"),
        ("123456789012345678901234.5", 8, "123456789012345678901234.50000000"),
    ],
)
def test_plain_is_never_an_exponent_and_rounds_half_even(value, places, text):
    assert plain(D(value), places) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [("0E+5", "0"), ("0.05000", "0.05"), ("0.333333333333333", "0.33333333"), ("2", "2")],
)
def test_a_ratio_has_at_most_eight_places_and_no_trailing_zeros(value, text):
    assert ratio(D(value)) == text


def test_without_an_engine_decimals_keep_their_exact_digits_in_plain_notation():
    show_with(Precisions())  # as in a process where no engine runs (the CLI)
    assert encode_json({"symbol": "BTCUSDT", "avg_price": D("50050.050050050")}) == (
        b'{"symbol":"BTCUSDT","avg_price":50050.050050050}'
    )


def test_fields_render_at_their_instrument_and_asset_precision(btc_usdt):
    order = {
        "symbol": "BTCUSDT",
        "order_qty": D("0.001"),
        "executed_qty": D("0.001"),
        "limit_price": D("50100"),
        "avg_price": D(150150) / D(3),
        "fee": D("1E-6"),
        "fee_asset": "BTC",
        "params": {"qty": D("0.0010000000")},
    }
    assert encode_json(order) == (
        b'{"symbol":"BTCUSDT","order_qty":0.00100,"executed_qty":0.00100,'
        b'"limit_price":50100.00,"avg_price":50050.00,"fee":0.00000100,"fee_asset":"BTC",'
        b'"params":{"qty":0.0010000000}}'
    )
    account = {
        "equity": D("1E+5"),
        "peak_equity": D("100000.000"),
        "leverage": D("0E+5"),
        "balances": [{"asset": "USDT", "free": D("99949.949949949"), "locked": D(0)}],
        "positions": [{"symbol": "BTCUSDT", "qty": D("0.000999"), "notional": D("49.999995000")}],
        "bids": [],
    }
    assert encode_json(account) == (
        b'{"equity":100000.00000000,"peak_equity":100000.00000000,"leverage":0,'
        b'"balances":[{"asset":"USDT","free":99949.94994995,"locked":0.00000000}],'
        b'"positions":[{"symbol":"BTCUSDT","qty":0.00099900,"notional":49.99999500}],'
        b'"bids":[]}'
    )
    book = {"symbol": "BTCUSDT", "bids": [[D("50000.1"), D("2")]], "asks": []}
    assert encode_json(book) == b'{"symbol":"BTCUSDT","bids":[[50000.10,2.00000]],"asks":[]}'


def test_an_unknown_symbol_or_asset_keeps_exact_digits(btc_usdt):
    tree = {"symbol": "DOGEUSDT", "price": D("0.123456789"), "max_notional": D("1E+4")}
    assert not EXPONENT.search(encode_json(tree))
    assert render(tree)["price"] != tree["price"]  # rendered, the value itself untouched
    assert encode_json(tree) == b'{"symbol":"DOGEUSDT","price":0.123456789,"max_notional":10000}'
