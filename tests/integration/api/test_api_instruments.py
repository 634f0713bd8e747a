"""GET /api/instruments: the symbols traded with the filters an order ticket validates
against, their decimals in their exact digits."""

import json
import re
from decimal import Decimal

from veloz.model.instruments import Instrument


async def test_instruments_lists_each_traded_symbol_with_its_filters(api, engine):
    response = await api.get("/api/instruments")
    assert response.status_code == 200
    body = response.json()
    symbols = [item["symbol"] for item in body["instruments"]]
    assert symbols == sorted(engine.instruments) and body["count"] == len(symbols)
    btc = next(item for item in body["instruments"] if item["symbol"] == "BTCUSDT")
    held = engine.instruments["BTCUSDT"]
    assert btc["status"] == "TRADING" and btc["trading"] is True
    assert (btc["base_asset"], btc["quote_asset"]) == ("BTC", "USDT")
    assert btc["market_min_qty"] is None and btc["max_notional"] is None
    # The filters keep their exact digits: the text, not a float near it.
    raw = json.loads(response.text, parse_float=Decimal, parse_int=Decimal)
    raw_btc = next(item for item in raw["instruments"] if item["symbol"] == "BTCUSDT")
    assert raw_btc["price_increment"] == held.price_increment
    assert str(raw_btc["price_increment"]) == "0.01"
    assert str(raw_btc["size_increment"]) == str(held.size_increment) == "0.00001"
    assert raw_btc["min_qty"] == held.min_qty and raw_btc["max_qty"] == held.max_qty
    assert raw_btc["min_notional"] == held.min_notional
    assert not re.search(r"[:\[,]-?\d+(?:\.\d+)?[eE][+-]?\d", response.text)


async def test_instruments_shows_a_market_lot_size_and_a_halt(api, engine):
    held = engine.instruments["ETHUSDT"]
    engine.instruments["ETHUSDT"] = Instrument(
        symbol="ETHUSDT",
        base_asset="ETH",
        quote_asset="USDT",
        price_increment=held.price_increment,
        size_increment=held.size_increment,
        min_qty=held.min_qty,
        max_qty=held.max_qty,
        min_notional=held.min_notional,
        market_max_qty=Decimal("120.5000"),
        status="BREAK",
    )
    try:
        raw = json.loads((await api.get("/api/instruments")).text, parse_float=Decimal)
    finally:
        engine.instruments["ETHUSDT"] = held
    eth = next(item for item in raw["instruments"] if item["symbol"] == "ETHUSDT")
    assert eth["status"] == "BREAK" and eth["trading"] is False
    assert str(eth["market_max_qty"]) == "120.5000"
