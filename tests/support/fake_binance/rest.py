"""The REST API: each endpoint's weight from rest-api.md, parameters read as Binance reads
them (query string and form body, the query string winning), signed endpoints checked
(API key, signature, timestamp), every answer carrying the rate-limit headers, and the
armed faults played around the real processing."""

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import parse_qsl

from aiohttp import web

from tests.support.fake_binance import auth, wire
from tests.support.fake_binance.account import Account, FakeOrder, new_client_id
from tests.support.fake_binance.faults import Fault, FaultPlan
from tests.support.fake_binance.limits import RateLimits, RateRefusal
from tests.support.fake_binance.market import SymbolMarket
from tests.support.fake_binance.orders import parse_new_order

Params = Mapping[str, str]
KLINE_INTERVALS = frozenset(
    (
        "1s",
        "1m",
        "3m",
        "5m",
        "15m",
        "30m",
        "1h",
        "2h",
        "4h",
        "6h",
        "8h",
        "12h",
        "1d",
        "3d",
        "1w",
        "1M",
    )
)


class LoggedRequest(NamedTuple):
    method: str  # HTTP method, or "WS" for a WebSocket API request
    path: str  # the REST path, or the WebSocket API method
    params: dict[str, str]  # without `signature` (nor the WebSocket API's `apiKey`)


@dataclass(frozen=True)
class Route:
    handler: Callable[[Params], object]
    weight: Callable[[Params], int]
    signed: bool = False


def _fixed(weight: int) -> Callable[[Params], int]:
    return lambda _params: weight


def _depth_weight(params: Params) -> int:
    limit = wire.integer(params, "limit", 100) or 100
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


class RestApi:
    def __init__(
        self,
        *,
        markets: dict[str, SymbolMarket],
        account: Account,
        verifier: auth.Verifier,
        limits: RateLimits,
        faults: FaultPlan,
        now_ms: Callable[[], int],
        hold: Callable[[], Awaitable[None]],
        log: list[LoggedRequest],
    ) -> None:
        self.markets = markets
        self.account = account
        self.verifier = verifier
        self.limits = limits
        self.faults = faults
        self.now_ms = now_ms
        self.hold = hold
        self.log = log
        self.retry_after_s = 1  # Retry-After of an injected 429
        self.ban_s = 120  # Retry-After of an injected 418
        has_symbol: Callable[[Params], bool] = lambda p: bool(p.get("symbol"))  # noqa: E731
        self.routes: dict[tuple[str, str], Route] = {
            ("GET", "/api/v3/ping"): Route(lambda _p: {}, _fixed(1)),
            ("GET", "/api/v3/time"): Route(lambda _p: {"serverTime": self.now_ms()}, _fixed(1)),
            ("GET", "/api/v3/exchangeInfo"): Route(self.exchange_info, _fixed(20)),
            ("GET", "/api/v3/depth"): Route(self.depth, _depth_weight),
            ("GET", "/api/v3/trades"): Route(self.recent_trades, _fixed(25)),
            ("GET", "/api/v3/historicalTrades"): Route(self.historical_trades, _fixed(25)),
            ("GET", "/api/v3/aggTrades"): Route(self.agg_trades, _fixed(4)),
            ("GET", "/api/v3/klines"): Route(self.klines, _fixed(2)),
            ("GET", "/api/v3/ticker/bookTicker"): Route(
                self.book_ticker, lambda p: 2 if has_symbol(p) else 4
            ),
            ("POST", "/api/v3/order"): Route(self.new_order, _fixed(1), signed=True),
            ("POST", "/api/v3/order/test"): Route(self.test_order, _fixed(1), signed=True),
            ("GET", "/api/v3/order"): Route(self.query_order, _fixed(4), signed=True),
            ("DELETE", "/api/v3/order"): Route(self.cancel_order, _fixed(1), signed=True),
            ("GET", "/api/v3/openOrders"): Route(
                self.open_orders, lambda p: 6 if has_symbol(p) else 80, signed=True
            ),
            ("DELETE", "/api/v3/openOrders"): Route(self.cancel_all, _fixed(1), signed=True),
            ("GET", "/api/v3/account"): Route(self.account_info, _fixed(20), signed=True),
            ("GET", "/api/v3/myTrades"): Route(
                self.my_trades, lambda p: 5 if p.get("orderId") else 20, signed=True
            ),
        }

    # -- the dispatch ----------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        route = self.routes.get((request.method, request.path))
        if route is None:
            return web.Response(status=404, text="Not Found")
        raw_query = request.rel_url.raw_query_string
        raw_body = await request.text() if request.can_read_body else ""
        now = self.now_ms()
        try:
            params = _params(raw_query, raw_body)
        except wire.Refusal as refusal:
            return self._answer(refusal.body(), refusal.status)
        logged = {k: v for k, v in params.items() if k != "signature"}
        self.log.append(LoggedRequest(request.method, request.path, logged))
        try:
            self.limits.admit(route.weight(params), now)
        except RateRefusal as refusal:
            return self._refused(refusal)
        armed = self.faults.take(request.path, request.method)
        if armed is not None and armed.fault in (Fault.RATE_429, Fault.BAN_418):
            return self._refused(self._injected_limit(armed.fault))
        if armed is not None and not armed.apply:
            return await self._fault(request, armed.fault, None)
        answer = self._process(request, route, params, raw_query, raw_body)
        if armed is not None:
            return await self._fault(request, armed.fault, answer)
        return answer

    def _process(
        self, request: web.Request, route: Route, params: Params, raw_query: str, raw_body: str
    ) -> web.Response:
        try:
            if route.signed:
                self.verifier.check_key(request.headers.get("X-MBX-APIKEY"))
                payload = auth.rest_payload(raw_query, raw_body)
                self.verifier.check_signature(payload, params.get("signature"))
                auth.check_timestamp(params, self.now_ms())
            return self._answer(route.handler(params), 200)
        except RateRefusal as refusal:
            return self._refused(refusal)
        except wire.Refusal as refusal:
            return self._answer(refusal.body(), refusal.status)

    async def _fault(
        self, request: web.Request, fault: Fault, answer: web.Response | None
    ) -> web.StreamResponse:
        if fault is Fault.TIMEOUT:
            await self.hold()  # the client has long given up; the answer, if any, is late
            return answer if answer is not None else _drop(request)
        if fault is Fault.DROP:
            return _drop(request)
        refusal = {
            Fault.HTTP_500: wire.INTERNAL_500,
            Fault.HTTP_503: wire.BUSY_503,
            Fault.CODE_1007: wire.TIMEOUT_1007,
        }[fault]
        return self._answer(refusal.body(), refusal.status)

    def _injected_limit(self, fault: Fault) -> RateRefusal:
        if fault is Fault.RATE_429:
            return RateRefusal(
                -1003,
                f"Too much request weight used; current limit is {self.limits.weight_limit} "
                "request weight per 1 MINUTE. Please use WebSocket Streams for live updates "
                "to avoid polling the API.",
                429,
                retry_after_s=self.retry_after_s,
            )
        until = self.now_ms() + self.ban_s * 1000
        return RateRefusal(
            -1003,
            f"Way too much request weight used; IP banned until {until}. Please use "
            "WebSocket Streams for live updates to avoid bans.",
            418,
            retry_after_s=self.ban_s,
        )

    def _answer(self, body: object, status: int) -> web.Response:
        return web.Response(
            status=status,
            text=json.dumps(body, separators=(",", ":")),
            content_type="application/json",
            headers=self.limits.headers(self.now_ms()),
        )

    def _refused(self, refusal: RateRefusal) -> web.Response:
        answer = self._answer(refusal.body(), refusal.status)
        answer.headers["Retry-After"] = str(refusal.retry_after_s)
        return answer

    # -- market data -----------------------------------------------------------------

    def market(self, params: Params) -> SymbolMarket:
        market = self.markets.get(wire.text(params, "symbol"))
        if market is None:
            raise wire.BAD_SYMBOL
        return market

    def _symbols(self, params: Params) -> list[SymbolMarket]:
        if params.get("symbol"):
            return [self.market(params)]
        if params.get("symbols"):
            try:
                names = json.loads(params["symbols"])
            except ValueError:
                raise wire.Refusal(
                    -1100, "Illegal characters found in parameter 'symbols'."
                ) from None
            return [self.market({"symbol": str(n)}) for n in names]
        return list(self.markets.values())

    def exchange_info(self, params: Params) -> object:
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [
                {k: v for k, v in limit.items() if k != "count"}
                for limit in self.limits.rate_limits(self.now_ms())
            ]
            + [
                {
                    "rateLimitType": "RAW_REQUESTS",
                    "interval": "MINUTE",
                    "intervalNum": 5,
                    "limit": 61000,
                }
            ],
            "exchangeFilters": [],
            "symbols": [m.rules.exchange_info() for m in self._symbols(params)],
        }

    def depth(self, params: Params) -> object:
        limit = min(wire.integer(params, "limit", 100) or 100, 5000)
        return self.market(params).snapshot(limit)

    def _limit(self, params: Params, default: int = 500) -> int:
        return min(wire.integer(params, "limit", default) or default, 1000)

    def recent_trades(self, params: Params) -> object:
        trades = self.market(params).trades
        return [t.json() for t in trades[-self._limit(params) :]]

    def historical_trades(self, params: Params) -> object:
        trades = self.market(params).trades
        from_id = wire.integer(params, "fromId")
        if from_id is None:
            chosen = trades[-self._limit(params) :]
        else:
            chosen = [t for t in trades if t.trade_id >= from_id][: self._limit(params)]
        return [t.json() for t in chosen]

    def agg_trades(self, params: Params) -> object:
        trades = self.market(params).trades
        from_id = wire.integer(params, "fromId")
        start, end = wire.integer(params, "startTime"), wire.integer(params, "endTime")
        chosen = [
            t
            for t in trades
            if (from_id is None or t.trade_id >= from_id)
            and (start is None or t.time_ms >= start)
            and (end is None or t.time_ms <= end)
        ]
        limit = self._limit(params)
        chosen = chosen[:limit] if from_id is not None or start is not None else chosen[-limit:]
        return [t.agg_json() for t in chosen]

    def klines(self, params: Params) -> object:
        market = self.market(params)
        interval = wire.text(params, "interval")
        if interval not in KLINE_INTERVALS:
            raise wire.Refusal(-1120, "Invalid interval.")
        if interval != "1m":
            return []  # the fake keeps 1m klines only
        start, end = wire.integer(params, "startTime"), wire.integer(params, "endTime")
        rows = [
            k
            for k in market.klines
            if (start is None or int(str(k[0])) >= start) and (end is None or int(str(k[0])) <= end)
        ]
        limit = self._limit(params)
        return rows[:limit] if start is not None else rows[-limit:]

    def book_ticker(self, params: Params) -> object:
        if params.get("symbol"):
            return self.market(params).book_ticker()
        return [m.book_ticker() for m in self._symbols(params)]

    # -- trading ---------------------------------------------------------------------

    def new_order(self, params: Params) -> object:
        new = parse_new_order(params, self.market(params))
        now = self.now_ms()
        self.limits.admit_order(now)
        order, fills = self.account.place(new)
        self.limits.count_order(now)
        if new.resp_type == "ACK":
            return order.ack_json()
        if new.resp_type == "RESULT":
            return order.result_json()
        return {**order.result_json(), "fills": [f.fill_json() for f in fills]}

    def test_order(self, params: Params) -> object:
        parse_new_order(params, self.market(params))
        return {}

    def _find(self, params: Params, unknown: wire.Refusal) -> FakeOrder:
        market = self.market(params)
        order_id = wire.integer(params, "orderId")
        orig = params.get("origClientOrderId")
        if order_id is None and not orig:
            raise wire.Refusal(
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        if order_id is not None:
            order = self.account.orders.get(order_id)
            if order is None or order.symbol != market.rules.symbol:
                raise unknown
            if orig and order.client_order_id != orig:
                raise wire.WRONG_CLIENT_ID
            return order
        assert orig is not None
        found = self.account.by_client_id(orig)
        if found is None or found.symbol != market.rules.symbol:
            raise unknown
        return found

    def query_order(self, params: Params) -> object:
        return self._find(params, wire.NO_SUCH_ORDER).query_json()

    def cancel_order(self, params: Params) -> object:
        order = self._find(params, wire.UNKNOWN_ORDER_CANCEL)
        restriction = params.get("cancelRestrictions")
        if restriction not in (None, "ONLY_NEW", "ONLY_PARTIALLY_FILLED"):
            raise wire.Refusal(-1145, "Invalid cancelRestrictions")
        if not order.is_open:
            raise wire.UNKNOWN_ORDER_CANCEL
        if restriction is not None and order.status != restriction.removeprefix("ONLY_"):
            raise wire.Refusal(-2011, "Order was not canceled due to cancel restrictions.")
        cancel_id = params.get("newClientOrderId") or new_client_id()
        wire.client_order_id(cancel_id)
        self.account.cancel(order, cancel_id)
        return order.cancel_json(cancel_id, self.now_ms())

    def open_orders(self, params: Params) -> object:
        symbol = self.market(params).rules.symbol if params.get("symbol") else None
        return [o.query_json() for o in self.account.open_orders(symbol)]

    def cancel_all(self, params: Params) -> object:
        orders = self.account.open_orders(self.market(params).rules.symbol)
        if not orders:
            raise wire.UNKNOWN_ORDER_CANCEL
        answers = []
        for order in orders:
            cancel_id = new_client_id()
            self.account.cancel(order, cancel_id)
            answers.append(order.cancel_json(cancel_id, self.now_ms()))
        return answers

    def account_info(self, params: Params) -> object:
        return self.account.account_json(params.get("omitZeroBalances") == "true")

    def my_trades(self, params: Params) -> object:
        symbol = self.market(params).rules.symbol
        order_id, from_id = wire.integer(params, "orderId"), wire.integer(params, "fromId")
        start, end = wire.integer(params, "startTime"), wire.integer(params, "endTime")
        chosen = [
            t
            for t in self.account.trades
            if t.symbol == symbol
            and (order_id is None or t.order_id == order_id)
            and (from_id is None or t.trade_id >= from_id)
            and (start is None or t.time_ms >= start)
            and (end is None or t.time_ms <= end)
        ]
        limit = self._limit(params)
        oldest_first = from_id is not None or start is not None
        return [t.json() for t in (chosen[:limit] if oldest_first else chosen[-limit:])]


def _params(raw_query: str, raw_body: str) -> dict[str, str]:
    """Query string and form body merged, the query string winning; a parameter twice in
    one of them is Binance's -1101."""
    merged: dict[str, str] = {}
    for raw in (raw_body, raw_query):
        seen: set[str] = set()
        for key, value in parse_qsl(raw, keep_blank_values=True):
            if key in seen:
                raise wire.Refusal(-1101, "Duplicate values for a parameter detected.")
            seen.add(key)
            merged[key] = value
    return merged


def _drop(request: web.Request) -> web.StreamResponse:
    """No answer: the TCP connection is cut under the client."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    with contextlib.suppress(Exception):
        request.protocol.force_close()
    raise asyncio.CancelledError
