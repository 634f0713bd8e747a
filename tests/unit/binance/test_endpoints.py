"""Production and testnet URLs as Binance documents them, and the combined-streams URL."""

import pytest

from veloz.binance.endpoints import SPOT, TESTNET, BinanceEndpoints


def test_production_and_testnet_urls():
    assert (SPOT.rest, SPOT.trade_rest) == ("https://api.binance.com", "https://api.binance.com")
    assert SPOT.ws_api == "wss://ws-api.binance.com:443/ws-api/v3"
    assert TESTNET.rest == TESTNET.trade_rest == "https://testnet.binance.vision"
    assert TESTNET.streams == "wss://stream.testnet.binance.vision/ws"
    assert TESTNET.ws_api == "wss://ws-api.testnet.binance.vision/ws-api/v3"


@pytest.mark.parametrize(
    "base",
    [
        "wss://stream.binance.com:9443/ws",
        "wss://stream.binance.com:9443/ws/",
        "wss://stream.binance.com:9443/stream",
        "wss://stream.binance.com:9443",
    ],
)
def test_combined_streams_url(base):
    endpoints = BinanceEndpoints(rest="r", streams=base, trade_rest="t", ws_api="w")
    url = endpoints.combined_streams_url(["btcusdt@trade", "btcusdt@depth@100ms"])
    assert url == "wss://stream.binance.com:9443/stream?streams=btcusdt@trade/btcusdt@depth@100ms"


def test_loopback_streams_url():
    endpoints = BinanceEndpoints(
        rest="http://127.0.0.1:1", streams="ws://127.0.0.1:1/ws", trade_rest="t", ws_api="w"
    )
    assert endpoints.combined_streams_url(["a"]) == "ws://127.0.0.1:1/stream?streams=a"
