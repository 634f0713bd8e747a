"""A fake Binance spot exchange for tests: REST API, market streams and WebSocket API on
loopback, written from Binance's public API documentation. See `server.FakeBinance`."""

from tests.support.fake_binance.account import Balance, FakeOrder, FakeTrade
from tests.support.fake_binance.faults import Fault
from tests.support.fake_binance.market import PublicTrade, SymbolRules
from tests.support.fake_binance.rest import LoggedRequest
from tests.support.fake_binance.server import FakeBinance

__all__ = [
    "Balance",
    "FakeBinance",
    "FakeOrder",
    "FakeTrade",
    "Fault",
    "LoggedRequest",
    "PublicTrade",
    "SymbolRules",
]
