"""`FakeBinance`: Binance's spot REST API, market streams and WebSocket API on one
loopback port, with one account, a book per symbol, and the controls tests need to make
the market move, fill orders by hand and make the exchange misbehave."""

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from aiohttp import web

from tests.support.fake_binance.account import Account, Balance, FakeOrder, FakeTrade
from tests.support.fake_binance.auth import Verifier
from tests.support.fake_binance.faults import Fault, FaultPlan
from tests.support.fake_binance.limits import RateLimits
from tests.support.fake_binance.market import (
    Level,
    PublicTrade,
    StreamEvent,
    SymbolMarket,
    SymbolRules,
)
from tests.support.fake_binance.rest import LoggedRequest, RestApi
from tests.support.fake_binance.streams import StreamHub
from tests.support.fake_binance.ws_api import WsApi

if TYPE_CHECKING:
    from veloz.binance.endpoints import BinanceEndpoints

Number = Decimal | str | int
LevelsIn = Iterable[tuple[Number, Number]]


class FakeBinance:
    def __init__(
        self,
        api_key: str = "k",
        secret: str | None = None,
        symbols: Sequence[str] = ("BTCUSDT",),
        *,
        ed25519_public_key_pem: str | None = None,
        rules: Iterable[SymbolRules] = (),
        balances: Mapping[str, Number] | None = None,
        weight_limit: int = 6000,
        commission_rate: Number = Decimal("0.001"),
        ping_interval_s: float = 20.0,
        timeout_hold_s: float = 30.0,
    ) -> None:
        self.verifier = Verifier(
            api_key, secret=secret, ed25519_public_key_pem=ed25519_public_key_pem
        )
        given = {r.symbol: r for r in rules}
        self.markets = {
            s: SymbolMarket(given.get(s) or SymbolRules.default(s))
            for s in dict.fromkeys([*symbols, *given])
        }
        if balances is None:
            balances = {}
            for market in self.markets.values():
                balances.setdefault(market.rules.base_asset, "100")
                balances.setdefault(market.rules.quote_asset, "1000000")
        # The fake's clock is the wall clock plus this skew: set it to make a client's
        # timestamps look stale (positive) or ahead (negative).
        self.clock_offset_ms = 0
        # How long a TIMEOUT fault holds its answer: longer than any client waits.
        self.timeout_hold_s = timeout_hold_s
        self.requests: list[LoggedRequest] = []
        self.limits = RateLimits(weight_limit=weight_limit)
        self.faults = FaultPlan()
        self.streams = StreamHub(ping_interval_s)
        self.ws_api = WsApi(
            verifier=self.verifier,
            limits=self.limits,
            faults=self.faults,
            now_ms=self.now_ms,
            log=lambda method, path, params: self.requests.append(
                LoggedRequest(method, path, params)
            ),
            hold=self._hold,
            ping_interval_s=ping_interval_s,
        )
        self.account = Account(
            markets=self.markets,
            balances={a: Balance(Decimal(str(v))) for a, v in balances.items()},
            now_ms=self.now_ms,
            user_event=self.ws_api.publish,
            market_events=self.streams.publish,
            commission_rate=Decimal(str(commission_rate)),
        )
        self.rest = RestApi(
            markets=self.markets,
            account=self.account,
            verifier=self.verifier,
            limits=self.limits,
            faults=self.faults,
            now_ms=self.now_ms,
            hold=self._hold,
            log=self.requests,
        )
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0

    def __repr__(self) -> str:
        return f"FakeBinance(port={self._port}, symbols={list(self.markets)})"

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws", self.streams.handle)
        app.router.add_get("/ws/{streams:.+}", self.streams.handle)
        app.router.add_get("/stream", self.streams.handle)
        app.router.add_get("/ws-api/v3", self.ws_api.handle)
        app.router.add_route("*", "/api/{tail:.*}", self.rest.handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        self._stopping.set()
        await self.streams.drop_all()
        await self.ws_api.drop_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "FakeBinance":
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def streams_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/ws"

    @property
    def ws_api_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/ws-api/v3"

    def endpoints(self) -> "BinanceEndpoints":
        # Imported here so that the fake works without (and before) the client package.
        from veloz.binance.endpoints import BinanceEndpoints  # noqa: PLC0415

        return BinanceEndpoints(
            rest=self.rest_url,
            streams=self.streams_url,
            trade_rest=self.rest_url,
            ws_api=self.ws_api_url,
        )

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.clock_offset_ms

    async def _hold(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.timeout_hold_s)

    # -- the market ------------------------------------------------------------------

    def set_book(self, symbol: str, bids: LevelsIn = (), asks: LevelsIn = ()) -> None:
        """Replace the book; subscribers get the difference as one depth diff (and a
        bookTicker if the top moved); resting orders it crosses fill."""
        market = self.markets[symbol]
        self.streams.publish(market.replace(_levels(bids), _levels(asks), self.now_ms()))
        self.account.cross_resting(symbol)

    async def publish_depth(self, symbol: str, bids: LevelsIn = (), asks: LevelsIn = ()) -> None:
        """One diff event with the next `U`..`u` (a quantity of 0 removes the level)."""
        market = self.markets[symbol]
        self.streams.publish(market.apply(_levels(bids), _levels(asks), self.now_ms()))
        self.account.cross_resting(symbol)

    def skip_depth_ids(self, symbol: str, n: int) -> None:
        """The next diff starts `n` ids past where it should: a gap in `U`/`u`."""
        self.markets[symbol].skip(n)

    async def publish_trade(
        self, symbol: str, price: Number, qty: Number, buyer_is_maker: bool = False
    ) -> PublicTrade:
        now = self.now_ms()
        trade = PublicTrade(
            trade_id=next(self.account.trade_ids),
            price=Decimal(str(price)),
            qty=Decimal(str(qty)),
            time_ms=now,
            buyer_is_maker=buyer_is_maker,
        )
        self.streams.publish(self.markets[symbol].trade(trade, now))
        return trade

    async def close_kline(
        self,
        symbol: str,
        *,
        close: Number,
        open: Number | None = None,
        high: Number | None = None,
        low: Number | None = None,
        volume: Number = 0,
        trades: int = 0,
        open_time_ms: int | None = None,
        closed: bool = True,
    ) -> dict[str, object]:
        """A 1m kline event (closed unless `closed=False`); closed ones also join the REST
        klines. By default the kline is the minute after the last one, or the minute that
        just ended. Returns the event's `k`."""
        market = self.markets[symbol]
        if open_time_ms is None:
            if market.klines:
                open_time_ms = int(str(market.klines[-1][0])) + 60_000
            else:
                open_time_ms = self.now_ms() // 60_000 * 60_000 - 60_000
        c = Decimal(str(close))
        o = Decimal(str(open)) if open is not None else c
        h = Decimal(str(high)) if high is not None else max(o, c)
        lo = Decimal(str(low)) if low is not None else min(o, c)
        events = market.kline(
            open_ms=open_time_ms,
            prices=(o, h, lo, c),
            volume=Decimal(str(volume)),
            trades=trades,
            closed=closed,
            now_ms=self.now_ms(),
        )
        self.streams.publish(events)
        body = events[0][1]["k"]
        assert isinstance(body, dict)
        return body

    def publish(self, events: Iterable[StreamEvent]) -> None:
        """Any raw stream payload, for cases the helpers above do not cover."""
        self.streams.publish(events)

    async def wait_for_streams(self, *names: str, timeout_s: float = 5.0) -> None:
        """Until every named stream (e.g. "btcusdt@depth@100ms") has a subscriber."""
        await self.streams.wait_for(names, timeout_s)

    async def drop_streams(self, *, abrupt: bool = False) -> None:
        """Close every market stream socket (a close frame, or `abrupt`: the TCP cut)."""
        await self.streams.drop_all(abrupt=abrupt)

    @property
    def streams_disconnect_after(self) -> int | None:
        """New market stream sockets close after this many messages (the 24-hour cut)."""
        return self.streams.close_after

    @streams_disconnect_after.setter
    def streams_disconnect_after(self, count: int | None) -> None:
        self.streams.close_after = count

    async def server_shutdown(self) -> None:
        """Binance's `serverShutdown` event on every socket, then the sockets close."""
        event: dict[str, object] = {"e": "serverShutdown", "E": self.now_ms()}
        for connection in self.streams.connections:
            wrapped: dict[str, object] = (
                {"stream": "!serverShutdown", "data": event} if connection.combined else event
            )
            connection.outbox.put(wrapped)
            connection.outbox.close_later()
        for session in self.ws_api.sessions:
            session.outbox.put({"event": event})
            session.outbox.close_later()

    # -- the account -----------------------------------------------------------------

    @property
    def orders(self) -> dict[int, FakeOrder]:
        """Every order ever placed, by orderId."""
        return self.account.orders

    @property
    def trades(self) -> list[FakeTrade]:
        """The account's fills, oldest first."""
        return self.account.trades

    @property
    def balances(self) -> dict[str, Balance]:
        return self.account.balances

    def order(self, client_order_id: str) -> FakeOrder:
        found = self.account.by_client_id(client_order_id)
        if found is None:
            raise KeyError(client_order_id)
        return found

    async def fill(
        self, client_order_id: str, qty: Number, price: Number | None = None
    ) -> FakeTrade:
        """A (partial) fill of an open order as maker, at its limit unless `price` says
        otherwise: a trade id, the fee, the executionReport and the account position."""
        order = self.order(client_order_id)
        fill_price = Decimal(str(price)) if price is not None else order.price
        return self.account.fill(order, Decimal(str(qty)), fill_price)

    async def expire(self, client_order_id: str) -> None:
        """Binance cancels the order itself (EXPIRED, EXCHANGE_CANCELED)."""
        self.account.expire(self.order(client_order_id))

    async def deposit(self, asset: str, delta: Number) -> None:
        """A deposit (negative: a withdrawal): `balanceUpdate` and the new position."""
        self.account.deposit(asset, Decimal(str(delta)))

    async def wait_for_user_stream(self, *, at_least: int = 1, timeout_s: float = 5.0) -> None:
        """Until `at_least` user data subscriptions are active on the WebSocket API."""
        await self.ws_api.wait_subscribed(timeout_s, at_least)

    async def drop_user_stream(self, *, abrupt: bool = False) -> None:
        """Close every WebSocket API connection (and with it the user data stream)."""
        await self.ws_api.drop_all(abrupt=abrupt)

    @property
    def ws_api_disconnect_after(self) -> int | None:
        return self.ws_api.close_after

    @ws_api_disconnect_after.setter
    def ws_api_disconnect_after(self, count: int | None) -> None:
        self.ws_api.close_after = count

    # -- misbehaving -----------------------------------------------------------------

    def replace_key(
        self, *, secret: str | None = None, ed25519_public_key_pem: str | None = None
    ) -> None:
        """The account's key changed (revoked and replaced): requests signed with the old
        one are refused from now on, as Binance refuses a revoked key."""
        self.verifier = Verifier(
            self.verifier.api_key, secret=secret, ed25519_public_key_pem=ed25519_public_key_pem
        )
        self.rest.verifier = self.verifier
        self.ws_api.verifier = self.verifier

    def fail_next(
        self,
        path: str,
        fault: Fault,
        *,
        count: int = 1,
        apply: bool = True,
        method: str | None = None,
    ) -> None:
        """The next `count` requests on `path` (a REST path, or a WebSocket API method
        such as "userDataStream.subscribe.signature"; `method` narrows to GET/POST/...)
        meet `fault`. With `apply` the request still takes effect (an order is placed)
        although the client never learns it; RATE_429 and BAN_418 never apply."""
        self.faults.arm(path, fault, count=count, apply=apply, method=method)

    @property
    def retry_after_s(self) -> int:
        """`Retry-After` of an injected RATE_429."""
        return self.rest.retry_after_s

    @retry_after_s.setter
    def retry_after_s(self, seconds: int) -> None:
        self.rest.retry_after_s = seconds

    @property
    def used_weight(self) -> dict[int, int]:
        """Request weight counted per window (window start in ms of the fake's clock)."""
        return self.limits.used_weight

    def current_weight(self) -> int:
        return self.limits.current_weight(self.now_ms())


def _levels(levels: LevelsIn) -> list[Level]:
    return [(Decimal(str(p)), Decimal(str(q))) for p, q in levels]
