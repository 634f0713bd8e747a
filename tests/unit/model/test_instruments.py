"""Instruments: splitting symbols into assets and the increments derived from a price."""

from decimal import Decimal

import pytest

from veloz.model.instruments import default_instrument, split_symbol

D = Decimal


@pytest.mark.parametrize(
    ("symbol", "base", "quote"),
    [
        ("BTCUSDT", "BTC", "USDT"),
        ("ETHBTC", "ETH", "BTC"),
        ("BTCFDUSD", "BTC", "FDUSD"),  # not BTCF + DUSD, nor BTCFD + USD
        ("1INCHUSDC", "1INCH", "USDC"),
        ("BNBETH", "BNB", "ETH"),
    ],
)
def test_split_symbol(symbol, base, quote):
    assert split_symbol(symbol) == (base, quote)


@pytest.mark.parametrize("symbol", ["USDT", "btcusdt", "BTC-USDT", "BTCXYZ", "B", "A" * 21, ""])
def test_split_symbol_refuses(symbol):
    with pytest.raises(ValueError, match="symbol"):
        split_symbol(symbol)


@pytest.mark.parametrize(
    ("price", "tick", "step", "min_notional"),
    [
        ("50000", "0.01", "0.00001", "5"),  # what Binance lists for BTCUSDT
        ("3000", "0.001", "0.0001", "5"),  # 7 significant digits of price
        ("0.5", "0.0000001", "1", "5"),
        ("1000000", "1", "0.0000001", "5"),
        ("1000000000000", "1", "0.00000001", "5"),  # both increments clamp
        ("0.000000000001", "0.0000000001", "1", "5"),
    ],
)
def test_default_instrument_scales_increments_to_the_price(price, tick, step, min_notional):
    instrument = default_instrument("BTCUSDT", D(price))
    assert instrument.price_increment == D(tick)
    assert instrument.size_increment == D(step)
    assert instrument.min_qty == instrument.size_increment
    assert instrument.min_notional == D(min_notional)


def test_increments_print_in_fixed_notation():
    instrument = default_instrument("BTCUSDT", D(50000))
    assert (str(instrument.price_increment), str(instrument.size_increment)) == ("0.01", "0.00001")


def test_no_minimum_notional_outside_stable_quotes():
    assert default_instrument("ETHBTC", D("0.05")).min_notional == 0


def test_grids():
    instrument = default_instrument("BTCUSDT", D(50000))
    assert instrument.is_price_on_grid(D("50000.01"))
    assert not instrument.is_price_on_grid(D("50000.001"))
    assert instrument.is_size_on_grid(D("0.00001"))
    assert not instrument.is_size_on_grid(D("0.000015"))
