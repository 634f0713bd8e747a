"""Where Binance is: production and the spot testnet, and the combined-streams URL."""

from collections.abc import Sequence

import msgspec


class BinanceEndpoints(msgspec.Struct, frozen=True, kw_only=True):
    rest: str  # market data REST base, no trailing slash; "/api/v3/..." is appended
    streams: str  # market streams as operators set it, e.g. wss://stream.binance.com:9443/ws
    trade_rest: str  # trading REST base
    ws_api: str  # WebSocket API, e.g. wss://ws-api.binance.com:443/ws-api/v3

    def combined_streams_url(self, streams: Sequence[str]) -> str:
        """One connection for many streams: the base's `/ws` becomes `/stream` and the
        streams are listed in `?streams=a/b/c` (payloads then come wrapped as
        `{"stream": ..., "data": ...}`)."""
        base = self.streams.rstrip("/")
        if base.endswith("/ws"):
            base = base[: -len("/ws")]
        if not base.endswith("/stream"):
            base += "/stream"
        return f"{base}?streams={'/'.join(streams)}"


SPOT = BinanceEndpoints(
    rest="https://api.binance.com",
    streams="wss://stream.binance.com:9443/ws",
    trade_rest="https://api.binance.com",
    ws_api="wss://ws-api.binance.com:443/ws-api/v3",
)

# The spot testnet: orders are free and fake; so is its book.
TESTNET = BinanceEndpoints(
    rest="https://testnet.binance.vision",
    streams="wss://stream.testnet.binance.vision/ws",
    trade_rest="https://testnet.binance.vision",
    ws_api="wss://ws-api.testnet.binance.vision/ws-api/v3",
)
