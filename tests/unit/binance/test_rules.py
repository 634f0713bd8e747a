"""exchangeInfo as Binance documents it becomes the instrument orders are checked and
rounded against; filters at 0 are off; an entry that does not parse is refused."""

from decimal import Decimal

import msgspec
import pytest

from veloz.binance.rules import parse_exchange_info
from veloz.model.commands import SubmitOrder
from veloz.model.enums import OrderSide, OrderType, TimeInForce
from veloz.model.errors import CommandRejected
from veloz.oms.validation import conform

D = Decimal

# Shaped as rest-api.md's exchangeInfo answer and filters.md's examples.
INFO = {
    "timezone": "UTC",
    "serverTime": 1565246363776,
    "rateLimits": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}
    ],
    "exchangeFilters": [],
    "symbols": [
        {
            "symbol": "BTCUSDT",
            "status": "TRADING",
            "baseAsset": "BTC",
            "baseAssetPrecision": 8,
            "quoteAsset": "USDT",
            "quotePrecision": 8,
            "orderTypes": ["LIMIT", "MARKET"],
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "0.01000000",
                    "maxPrice": "1000000.00000000",
                    "tickSize": "0.01000000",
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": "0.00001000",
                    "maxQty": "9000.00000000",
                    "stepSize": "0.00001000",
                },
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": "0.00000000",
                    "maxQty": "120.50000000",
                    "stepSize": "0.00000000",
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": "5.00000000",
                    "applyMinToMarket": True,
                    "maxNotional": "9000000.00000000",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            ],
        },
        {
            "symbol": "LTCBTC",
            "status": "BREAK",
            "baseAsset": "LTC",
            "baseAssetPrecision": 8,
            "quoteAsset": "BTC",
            "quotePrecision": 8,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "0",
                    "maxPrice": "0",
                    "tickSize": "0.00000100",
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": "0.00100000",
                    "maxQty": "100000.00000000",
                    "stepSize": "0.00100000",
                },
                {
                    "filterType": "MIN_NOTIONAL",
                    "minNotional": "0.00010000",
                    "applyToMarket": False,
                    "avgPriceMins": 5,
                },
            ],
        },
    ],
}


def test_filters_become_the_instrument():
    btc = parse_exchange_info(INFO)["BTCUSDT"].instrument()
    assert (btc.base_asset, btc.quote_asset, btc.status) == ("BTC", "USDT", "TRADING")
    assert (btc.price_increment, btc.size_increment) == (D("0.01"), D("0.00001"))
    assert (btc.min_qty, btc.max_qty) == (D("0.00001"), D("9000"))
    assert (btc.min_price, btc.max_price) == (D("0.01"), D("1000000"))
    assert (btc.market_min_qty, btc.market_max_qty) == (None, D("120.5"))
    assert (btc.min_notional, btc.max_notional) == (D("5"), D("9000000"))
    assert btc.min_notional_applies_to_market and not btc.max_notional_applies_to_market
    assert str(btc.max_price) == "1000000"  # plain notation, not 1E+6


def test_zero_disables_a_bound_and_the_legacy_min_notional_is_read():
    ltc = parse_exchange_info(INFO)["LTCBTC"].instrument()
    assert (ltc.min_price, ltc.max_price) == (None, None)
    assert ltc.min_notional == D("0.0001") and not ltc.min_notional_applies_to_market
    assert ltc.status == "BREAK" and not ltc.trading


def test_orders_are_rounded_and_refused_by_binances_filters():
    btc = parse_exchange_info(INFO)["BTCUSDT"].instrument()
    order = SubmitOrder(
        symbol="BTCUSDT", side=OrderSide.BUY, qty=D("0.000123"), price=D("50000.017")
    )
    rounded = conform(order, btc, None)
    assert (rounded.qty, rounded.price) == (D("0.00012"), D("50000.01"))
    market = SubmitOrder(
        symbol="BTCUSDT",
        side=OrderSide.SELL,
        qty=D("121"),
        order_type=OrderType.MARKET,
        time_in_force=TimeInForce.IOC,
    )
    with pytest.raises(CommandRejected, match="MARKET_LOT_SIZE"):
        conform(market, btc, D("50000"))
    with pytest.raises(CommandRejected, match="NOTIONAL"):
        conform(msgspec.structs.replace(order, qty=D("0.00009")), btc, None)


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"symbols": [{"symbol": "X", "filters": []}]},  # no assets
        {
            "symbols": [
                {
                    "symbol": "X",
                    "baseAsset": "X",
                    "quoteAsset": "Y",
                    "filters": [{"filterType": "LOT_SIZE", "stepSize": "abc"}],
                }
            ]
        },
        {
            "symbols": [
                {
                    "symbol": "X",
                    "baseAsset": "X",
                    "quoteAsset": "Y",
                    "filters": [{"filterType": "LOT_SIZE", "stepSize": "-1"}],
                }
            ]
        },
    ],
)
def test_an_answer_that_does_not_parse_is_refused(broken):
    with pytest.raises(ValueError):
        parse_exchange_info(broken)


def symbol_entry(*filters: dict[str, object], **fields: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "symbol": "ETHBTC",
        "status": "TRADING",
        "baseAsset": "ETH",
        "baseAssetPrecision": 8,
        "quoteAsset": "BTC",
        "quotePrecision": 8,
        "quoteAssetPrecision": 6,
        "filters": list(filters),
    }
    entry.update(fields)
    return entry


def test_both_notional_filters_apply_so_the_stricter_minimum_wins():
    info = {
        "symbols": [
            symbol_entry(
                {"filterType": "MIN_NOTIONAL", "minNotional": "0.002", "applyToMarket": False},
                {
                    "filterType": "NOTIONAL",
                    "minNotional": "0.001",
                    "applyMinToMarket": True,
                    "maxNotional": "0",
                    "applyMaxToMarket": True,
                },
            )
        ]
    }
    rules = parse_exchange_info(info)["ETHBTC"]
    assert rules.min_notional == D("0.002") and rules.apply_min_to_market
    assert rules.max_notional is None and not rules.apply_max_to_market  # 0: no maximum


def test_missing_filters_fall_back_to_the_assets_precision():
    rules = parse_exchange_info({"symbols": [symbol_entry()]})["ETHBTC"]
    assert rules.tick_size == D("0.000001")  # quoteAssetPrecision 6
    assert rules.step_size == D("0.00000001") and rules.min_qty == rules.step_size
    assert (rules.max_qty, rules.min_notional, rules.apply_min_to_market) == (None, D(0), False)
    instrument = rules.instrument()
    assert instrument.max_qty > D(1_000_000) and instrument.min_notional == 0


def test_a_new_status_is_kept_and_means_not_trading():
    rules = parse_exchange_info({"symbols": [symbol_entry(status="CANCEL_ONLY")]})["ETHBTC"]
    assert rules.status == "CANCEL_ONLY" and not rules.instrument().trading


def test_a_symbol_entry_that_is_not_an_object_is_refused():
    with pytest.raises(ValueError, match="not an object"):
        parse_exchange_info({"symbols": ["BTCUSDT"]})
