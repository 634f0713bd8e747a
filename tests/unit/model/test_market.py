"""Quotes: the mid, with and without a spread."""

from decimal import Decimal

import pytest

from veloz.model.market import QuoteTick

D = Decimal


def quote(bid: str, ask: str) -> QuoteTick:
    return QuoteTick(
        symbol="BTCUSDT", bid=D(bid), ask=D(ask), bid_size=D(1), ask_size=D(1), ts_ns=0
    )


@pytest.mark.parametrize("price", ["47000.5", "47000.50", "0.00010", "1E+3", "46999.99"])
def test_a_quote_without_a_spread_has_its_price_as_the_mid_as_the_arithmetic_gives_it(price):
    mid = quote(price, price).mid
    assert str(mid) == str(price) == str((D(price) + D(price)) / 2)


def test_a_spread_quote_has_the_halfway_price_as_the_mid():
    assert quote("99.5", "100.5").mid == D(100)
    assert quote("1", "2").mid == D("1.5")
