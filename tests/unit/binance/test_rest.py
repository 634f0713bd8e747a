"""The REST client against a small loopback server: signed calls as Binance checks them,
the clock resync on -1021, and each kind of failure classified (timeout and 5xx: unknown
outcome; 429: back off; 418: banned), with Binance's usage headers fed to the limiter."""

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web

from veloz.binance.errors import BinanceError, RateLimited, UnknownOutcome
from veloz.binance.limits import RateLimiter
from veloz.binance.rest import BinanceRest, format_param
from veloz.binance.signing import Credentials, HmacSigner

KEY, SECRET = "test-key", "test-secret"
SERVER_AHEAD_MS = 7_000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.seen: list[dict[str, str]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(dict(request.query))
        return await self.routes[request.path](request)


def signature_ok(request: web.Request) -> bool:
    query = request.query_string
    body, _, signature = query.rpartition("&signature=")
    expected = hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
    return request.headers.get("X-MBX-APIKEY") == KEY and signature == expected


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    running = Server()
    await running.start()
    yield running
    assert running.runner is not None
    await running.runner.cleanup()


@pytest.fixture
async def client(server: Server) -> AsyncIterator[BinanceRest]:
    rest = BinanceRest(
        server.url,
        credentials=Credentials(KEY, HmacSigner(SECRET)),
        limiter=RateLimiter(),
        timeout_s=0.3,
    )
    yield rest
    await rest.close()


def json(data: Any, status: int = 200, **headers: str) -> web.Response:
    return web.json_response(data, status=status, headers=headers)


async def test_a_signed_call_carries_key_timestamp_window_and_a_valid_signature(server, client):
    async def order(request: web.Request) -> web.Response:
        if not signature_ok(request):
            return json({"code": -1022, "msg": "Signature for this request is not valid."}, 400)
        return json({"orderId": 1, "params": dict(request.query)})

    server.routes["/api/v3/order"] = order
    answer = await client.signed(
        "POST",
        "/api/v3/order",
        {"symbol": "BTCUSDT", "quantity": Decimal("0.00100000"), "price": Decimal("5E+4")},
        orders=1,
    )
    params = answer["params"]
    assert params["quantity"] == "0.001" and params["price"] == "50000"
    assert params["recvWindow"] == "5000" and int(params["timestamp"]) > 0


async def test_a_wrong_signature_is_a_binance_error_with_binances_message(server):
    async def order(request: web.Request) -> web.Response:
        if not signature_ok(request):
            return json({"code": -1022, "msg": "Signature for this request is not valid."}, 400)
        return json({})

    server.routes["/api/v3/order"] = order
    wrong = BinanceRest(
        server.url, credentials=Credentials(KEY, HmacSigner("other")), limiter=RateLimiter()
    )
    with pytest.raises(BinanceError) as refused:
        await wrong.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT"})
    await wrong.close()
    assert refused.value.code == -1022 and "not valid" in str(refused.value)
    assert "other" not in str(refused.value) and "signature=" not in str(refused.value)


async def test_minus_1021_resyncs_the_clock_and_retries_once(server, client):
    server_ms = lambda: client._wall_ms() + SERVER_AHEAD_MS  # noqa: E731

    async def time_(request: web.Request) -> web.Response:
        return json({"serverTime": server_ms()})

    async def account(request: web.Request) -> web.Response:
        if abs(int(request.query["timestamp"]) - server_ms()) > 1000:
            return json(
                {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."},
                400,
            )
        return json({"balances": []})

    server.routes["/api/v3/time"] = time_
    server.routes["/api/v3/account"] = account
    assert await client.signed("GET", "/api/v3/account", weight=20) == {"balances": []}
    assert abs(client.offset_ms - SERVER_AHEAD_MS) < 500
    assert client.stats.time_syncs == 1
    assert client.stats.errors[("/api/v3/account", "-1021")] == 1


async def test_a_timeout_is_an_unknown_outcome(server, client):
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return json({})

    server.routes["/api/v3/order"] = slow
    with pytest.raises(UnknownOutcome):
        await client.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT"})
    assert client.stats.errors[("/api/v3/order", "timeout")] == 1


@pytest.mark.parametrize(("status", "code"), [(500, None), (503, None), (408, -1007)])
async def test_5xx_and_minus_1007_are_unknown_outcomes(server, client, status, code):
    async def failing(request: web.Request) -> web.Response:
        body = {"code": code, "msg": "Timeout waiting for response from backend server."}
        return json(body if code else "Internal error", status)

    server.routes["/api/v3/order"] = failing
    with pytest.raises(UnknownOutcome) as unknown:
        await client.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT"})
    assert unknown.value.status == status


async def test_a_dropped_connection_is_an_unknown_outcome(server, client):
    async def drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    server.routes["/api/v3/order"] = drop
    with pytest.raises(UnknownOutcome):
        await client.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT"})


async def test_429_backs_off_for_retry_after(server, client):
    async def limited(request: web.Request) -> web.Response:
        return json(
            {"code": -1003, "msg": "Too much request weight used"}, 429, **{"Retry-After": "7"}
        )

    server.routes["/api/v3/depth"] = limited
    with pytest.raises(RateLimited) as refused:
        await client.public("GET", "/api/v3/depth", {"symbol": "BTCUSDT"}, weight=5)
    assert not refused.value.banned and refused.value.retry_after_s == 7
    assert client.limiter.backoff_until is not None and not client.limiter.banned


async def test_418_bans_every_further_call(server, client):
    async def banned(request: web.Request) -> web.Response:
        return json(
            {"code": -1003, "msg": "Way too much request weight used; IP banned"},
            418,
            **{"Retry-After": "120"},
        )

    server.routes["/api/v3/depth"] = banned
    with pytest.raises(RateLimited):
        await client.public("GET", "/api/v3/depth")
    calls = len(server.seen)
    with pytest.raises(RateLimited) as refused:
        await client.public("GET", "/api/v3/ping")
    assert refused.value.banned and len(server.seen) == calls  # never left the process


async def test_usage_headers_feed_the_limiter(server, client):
    async def ping(request: web.Request) -> web.Response:
        return json({}, **{"X-MBX-USED-WEIGHT-1m": "3000"})

    server.routes["/api/v3/ping"] = ping
    await client.public("GET", "/api/v3/ping")
    assert client.limiter.headroom()["REQUEST_WEIGHT_1m"] == pytest.approx(0.5)


def test_websocket_api_params_are_signed_over_the_sorted_parameters():
    rest = BinanceRest(
        "http://unused",
        credentials=Credentials(KEY, HmacSigner(SECRET)),
        limiter=RateLimiter(),
        wall_ms=lambda: 1_700_000_000_000,
    )
    signed = rest.sign_params({"symbol": "BTCUSDT"})
    payload = "&".join(f"{k}={signed[k]}" for k in sorted(signed) if k != "signature")
    assert signed["apiKey"] == KEY and signed["timestamp"] == "1700000000000"
    assert (
        signed["signature"]
        == hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
    )


def test_decimals_are_sent_in_plain_notation():
    assert format_param(Decimal("1E-8")) == "0.00000001"
    assert format_param(Decimal("50000.10")) == "50000.1"
    assert format_param(Decimal("100")) == "100"
