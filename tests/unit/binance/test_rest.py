"""The REST client against a small loopback server: signed calls as Binance checks them,
the clock resync on -1021, and each kind of failure classified (timeout and 5xx: unknown
outcome; 429: back off; 418: banned), with Binance's usage headers fed to the limiter."""

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from veloz.binance.errors import BinanceError, RateLimited, UnknownOutcome
from veloz.binance.limits import RateLimiter
from veloz.binance.rest import BinanceRest, format_param
from veloz.binance.signing import Credentials, HmacSigner, signer_for

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


def raw_query(request: web.Request) -> str:
    """The query string as it came over the wire (aiohttp's `query_string` is decoded);
    Binance checks the signature against these bytes."""
    return request.raw_path.partition("?")[2]


def signature_ok(request: web.Request) -> bool:
    query = raw_query(request)
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


def json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
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
    def server_ms() -> int:
        return int(time.time() * 1000) + SERVER_AHEAD_MS

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
            {"code": -1003, "msg": "Too much request weight used"}, 429, {"Retry-After": "7"}
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
            {"Retry-After": "120"},
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
        return json({}, headers={"X-MBX-USED-WEIGHT-1m": "3000"})

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


async def test_an_ed25519_signature_travels_percent_encoded_and_verifies(server):
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()

    async def order(request: web.Request) -> web.Response:
        # As Binance checks it: the signature over the query string before `&signature=`,
        # its value percent-decoded from base64.
        payload, _, _ = raw_query(request).rpartition("&signature=")
        signature = base64.b64decode(request.query["signature"])
        key.public_key().verify(signature, payload.encode())  # raises: a 500
        return json({"orderId": 1})

    server.routes["/api/v3/order"] = order
    rest = BinanceRest(
        server.url, credentials=Credentials(KEY, signer_for(pem)), limiter=RateLimiter()
    )
    # Enough calls that some signatures hold a + or a /, which must not reach Binance raw.
    for i in range(8):
        assert await rest.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT", "n": i}) == {
            "orderId": 1
        }
    await rest.close()


async def test_a_failed_resync_reports_the_refusal_not_an_unknown_outcome(server, client):
    async def account(request: web.Request) -> web.Response:
        msg = "Timestamp for this request was 1000ms ahead of the server's time."
        return json({"code": -1021, "msg": msg}, 400)

    async def time_(request: web.Request) -> web.Response:
        return json("down", 503)

    server.routes["/api/v3/order"] = account
    server.routes["/api/v3/time"] = time_
    with pytest.raises(BinanceError) as refused:
        await client.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT"})
    assert not isinstance(refused.value, UnknownOutcome) and refused.value.code == -1021
    assert client.stats.errors[("/api/v3/time", "5xx")] == 1


async def test_a_second_minus_1021_is_not_retried_again(server, client):
    async def time_(request: web.Request) -> web.Response:
        return json({"serverTime": int(time.time() * 1000)})

    async def account(request: web.Request) -> web.Response:
        msg = "Timestamp for this request is outside of the recvWindow."
        return json({"code": -1021, "msg": msg}, 400)

    server.routes["/api/v3/time"] = time_
    server.routes["/api/v3/account"] = account
    with pytest.raises(BinanceError) as refused:
        await client.signed("GET", "/api/v3/account")
    assert refused.value.code == -1021
    assert client.stats.requests["/api/v3/account"] == 2 and client.stats.time_syncs == 1


async def test_a_get_that_times_out_is_an_unknown_outcome_too(server, client):
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return json({})

    server.routes["/api/v3/depth"] = slow
    with pytest.raises(UnknownOutcome, match="timed out"):
        await client.public("GET", "/api/v3/depth", {"symbol": "BTCUSDT"})
    assert client.stats.latency["/api/v3/depth"].count == 1


async def test_public_calls_carry_no_key_and_parameters_in_a_stable_order(server, client):
    async def klines(request: web.Request) -> web.Response:
        assert "X-MBX-APIKEY" not in request.headers and "signature" not in request.query
        return json({"query": raw_query(request)})

    server.routes["/api/v3/exchangeInfo"] = klines
    answer = await client.public(
        "GET",
        "/api/v3/exchangeInfo",
        {"symbols": ["BTCUSDT", "ETHUSDT"], "showPermissionSets": False},
    )
    assert answer["query"] == (
        "symbols=%5B%22BTCUSDT%22%2C%22ETHUSDT%22%5D&showPermissionSets=false"
    )
    assert client.stats.requests["/api/v3/exchangeInfo"] == 1


async def test_a_session_is_made_when_none_is_given_and_closed_only_if_ours(server):
    async def ping(request: web.Request) -> web.Response:
        return json({})

    server.routes["/api/v3/ping"] = ping
    async with aiohttp.ClientSession() as shared:
        rest = BinanceRest(server.url, limiter=RateLimiter(), session=shared)
        await rest.public("GET", "/api/v3/ping")
        await rest.close()
        assert not shared.closed
    own = BinanceRest(server.url, limiter=RateLimiter())
    await own.public("GET", "/api/v3/ping")
    session = own._session
    await own.close()
    assert session is not None and session.closed


def test_websocket_api_signature_matches_binances_documented_example():
    # web-socket-api.md, "SIGNED request example (HMAC)".
    api_key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    rest = BinanceRest(
        "http://unused",
        credentials=Credentials(api_key, HmacSigner(secret)),
        limiter=RateLimiter(),
        wall_ms=lambda: 1645423376532,
    )
    signed = rest.sign_params(
        {
            "symbol": "BTCUSDT",
            "side": "SELL",
            "type": "LIMIT",
            "timeInForce": "GTC",
            "quantity": "0.01000000",
            "price": "52000.00",
            "recvWindow": 100,
        }
    )
    assert signed["signature"] == "aa1b5712c094bc4e57c05a1a5c1fd8d88dcd628338ea863fec7b88e59fe2db24"
    assert signed["apiKey"] == api_key and signed["timestamp"] == "1645423376532"


def test_signing_for_the_websocket_api_without_credentials_is_refused():
    with pytest.raises(BinanceError, match="none is configured"):
        BinanceRest("http://unused", limiter=RateLimiter()).sign_params({})


def test_lists_are_sent_as_json_arrays():
    assert format_param(["BTCUSDT", "ETHUSDT"]) == '["BTCUSDT","ETHUSDT"]'
    assert format_param(True) == "true"
