"""The fake Binance checked against Binance's documentation, through raw HTTP and
WebSocket requests (a signer of its own, so nothing here depends on the client under
test): the documented signature example, the signed order lifecycle with Binance's
error codes, depth update ids and a gap, rate limits, an order placed behind a timeout,
and user data events on the WebSocket API."""

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from yarl import URL

from tests.support.fake_binance import FakeBinance, Fault
from tests.support.fake_binance.auth import Verifier, rest_payload, ws_api_payload

KEY, SECRET = "k", "s"
SYMBOL = "BTCUSDT"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_PAYLOAD = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    "&recvWindow=5000&timestamp=1499827319559"
)
DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
WAIT_S = 5.0


def sign(payload: str, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Client:
    """Raw signed requests, the way rest-api.md's curl examples send them."""

    def __init__(self, fake: FakeBinance, session: aiohttp.ClientSession) -> None:
        self.fake = fake
        self.session = session
        self.key = KEY
        self.secret = SECRET

    async def call(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        *,
        signed: bool = True,
        timestamp: int | None = None,
        timeout_s: float = 5.0,
    ) -> tuple[int, Any, dict[str, str]]:
        items = dict(params or {})
        headers = {}
        if signed:
            items["timestamp"] = str(timestamp if timestamp is not None else now_ms())
            query = urlencode(items)
            query += f"&signature={sign(query, self.secret)}"
            headers["X-MBX-APIKEY"] = self.key
        else:
            query = urlencode(items)
        url = f"{self.fake.rest_url}{path}?{query}"
        async with self.session.request(
            method, url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as response:
            return response.status, await response.json(), dict(response.headers)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    server = FakeBinance(api_key=KEY, secret=SECRET, symbols=(SYMBOL,), timeout_hold_s=2.0)
    await server.start()
    server.set_book(SYMBOL, bids=[("50000", "1")], asks=[("50001", "0.01"), ("50002", "1")])
    yield server
    await server.stop()


@pytest.fixture
async def client(fake: FakeBinance) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(fake, session)


def limit_buy(client_id: str, qty: str = "0.01", price: str = "49000") -> dict[str, str]:
    return {
        "symbol": SYMBOL,
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": qty,
        "price": price,
        "newClientOrderId": client_id,
    }


# -- signatures ------------------------------------------------------------------------


def test_the_documented_hmac_example_is_accepted_and_a_changed_byte_refused() -> None:
    verifier = Verifier("any", secret=DOC_SECRET)

    assert verifier.valid(DOC_PAYLOAD, DOC_SIGNATURE)
    assert verifier.valid(DOC_PAYLOAD, DOC_SIGNATURE.upper())  # HMAC: case-insensitive
    assert not verifier.valid(DOC_PAYLOAD.replace("price=0.1", "price=0.2"), DOC_SIGNATURE)
    assert not verifier.valid(DOC_PAYLOAD, DOC_SIGNATURE[:-1] + "0")


def test_the_payload_is_query_then_body_without_the_signature() -> None:
    assert rest_payload("symbol=LTCBTC&side=BUY", "type=LIMIT&signature=ab") == (
        "symbol=LTCBTC&side=BUYtype=LIMIT"
    )
    params = {"timestamp": 1, "apiKey": "k", "signature": "x", "recvWindow": 100}
    assert ws_api_payload(params) == "apiKey=k&recvWindow=100&timestamp=1"


def test_ed25519_signatures_are_verified_with_the_public_key() -> None:
    private = Ed25519PrivateKey.generate()
    public_pem = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    verifier = Verifier("k", ed25519_public_key_pem=public_pem.decode())
    signature = base64.b64encode(private.sign(DOC_PAYLOAD.encode())).decode()

    assert verifier.valid(DOC_PAYLOAD, signature)
    assert not verifier.valid(DOC_PAYLOAD + "0", signature)
    assert not verifier.valid(DOC_PAYLOAD, "not base64!")
    assert "k" not in repr(verifier) and "PRIVATE" not in repr(verifier)


async def test_ed25519_keyed_fake_accepts_a_percent_encoded_base64_signature() -> None:
    private = Ed25519PrivateKey.generate()
    public_pem = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    async with (
        FakeBinance(api_key=KEY, ed25519_public_key_pem=public_pem.decode()) as fake,
        aiohttp.ClientSession() as session,
    ):
        query = urlencode({"timestamp": now_ms()})
        signature = quote(base64.b64encode(private.sign(query.encode())).decode(), safe="")
        url = f"{fake.rest_url}/api/v3/account?{query}&signature={signature}"
        async with session.get(URL(url, encoded=True), headers={"X-MBX-APIKEY": KEY}) as response:
            assert response.status == 200
            assert (await response.json())["accountType"] == "SPOT"


async def test_bad_signature_key_and_timestamps_are_refused_as_binance_does(
    fake: FakeBinance, client: Client
) -> None:
    client.secret = "wrong"
    assert (await client.call("GET", "/api/v3/account"))[:2] == (
        400,
        {"code": -1022, "msg": "Signature for this request is not valid."},
    )
    client.secret, client.key = SECRET, "other"
    status, body, _ = await client.call("GET", "/api/v3/account")
    assert (status, body["code"]) == (401, -2015)
    client.key = ""
    status, body, _ = await client.call("GET", "/api/v3/account")
    assert (status, body["code"]) == (401, -2014)
    client.key = KEY

    fake.clock_offset_ms = 6_000  # our 5 s recvWindow has passed on Binance's clock
    status, body, _ = await client.call("GET", "/api/v3/account")
    assert (status, body) == (
        400,
        {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."},
    )
    fake.clock_offset_ms = -1_500  # we are more than 1 s ahead of Binance
    status, body, _ = await client.call("GET", "/api/v3/account")
    assert (status, body["code"]) == (400, -1021)
    assert "ahead of the server's time" in body["msg"]
    fake.clock_offset_ms = 0
    status, _, _ = await client.call("GET", "/api/v3/account")
    assert status == 200
    # Nothing secret is kept in the request log.
    assert all("signature" not in r.params for r in fake.requests)


# -- orders ----------------------------------------------------------------------------


async def test_signed_limit_order_lifecycle(fake: FakeBinance, client: Client) -> None:
    status, placed, headers = await client.call("POST", "/api/v3/order", limit_buy("a-1"))
    assert status == 200
    assert placed["status"] == "NEW" and placed["clientOrderId"] == "a-1"
    assert placed["origQty"] == "0.01000000" and placed["fills"] == []
    assert headers["X-MBX-ORDER-COUNT-10s"] == "1" and headers["X-MBX-ORDER-COUNT-1d"] == "1"
    assert int(headers["X-MBX-USED-WEIGHT-1m"]) > 0
    assert fake.balances["USDT"].locked == Decimal("490.00")
    assert fake.balances["USDT"].free == Decimal("1000000") - Decimal("490.00")

    status, body, _ = await client.call("POST", "/api/v3/order", limit_buy("a-1"))
    assert (status, body) == (400, {"code": -2010, "msg": "Duplicate order sent."})

    status, queried, _ = await client.call(
        "GET", "/api/v3/order", {"symbol": SYMBOL, "origClientOrderId": "a-1"}
    )
    assert status == 200
    assert queried["orderId"] == placed["orderId"] and queried["isWorking"] is True

    trade = await fake.fill("a-1", Decimal("0.004"), Decimal("49000"))
    assert trade.commission == Decimal("0.000004") and trade.commission_asset == "BTC"
    assert fake.balances["BTC"].free == Decimal("100") + Decimal("0.004") - Decimal("0.000004")

    status, cancelled, _ = await client.call(
        "DELETE", "/api/v3/order", {"symbol": SYMBOL, "origClientOrderId": "a-1"}
    )
    assert status == 200
    assert cancelled["status"] == "CANCELED" and cancelled["origClientOrderId"] == "a-1"
    assert cancelled["executedQty"] == "0.00400000"
    assert fake.balances["USDT"].locked == 0
    assert fake.balances["USDT"].free == Decimal("1000000") - Decimal("0.004") * 49000

    status, body, _ = await client.call(
        "DELETE", "/api/v3/order", {"symbol": SYMBOL, "origClientOrderId": "a-1"}
    )
    assert (status, body) == (400, {"code": -2011, "msg": "Unknown order sent."})
    status, body, _ = await client.call(
        "GET", "/api/v3/order", {"symbol": SYMBOL, "origClientOrderId": "nope"}
    )
    assert (status, body) == (400, {"code": -2013, "msg": "Order does not exist."})
    # The id is free again once the order is closed.
    status, _, _ = await client.call("POST", "/api/v3/order", limit_buy("a-1"))
    assert status == 200


async def test_market_order_takes_several_levels_with_a_fee_each(
    fake: FakeBinance, client: Client
) -> None:
    params = {"symbol": SYMBOL, "side": "BUY", "type": "MARKET", "quantity": "0.03"}
    status, body, _ = await client.call("POST", "/api/v3/order", params)

    assert status == 200 and body["status"] == "FILLED"
    assert [(f["price"], f["qty"], f["commissionAsset"]) for f in body["fills"]] == [
        ("50001.00000000", "0.01000000", "BTC"),
        ("50002.00000000", "0.02000000", "BTC"),
    ]
    assert len({f["tradeId"] for f in body["fills"]}) == 2
    cost = Decimal("0.01") * 50001 + Decimal("0.02") * 50002
    assert body["cummulativeQuoteQty"] == f"{cost:.8f}"
    assert fake.balances["USDT"].free == Decimal("1000000") - cost
    assert fake.balances["BTC"].free == Decimal("100.03") - Decimal("0.00003")
    assert fake.markets[SYMBOL].sorted_asks() == [(Decimal("50002"), Decimal("0.98"))]

    status, trades, _ = await client.call("GET", "/api/v3/myTrades", {"symbol": SYMBOL})
    assert [t["id"] for t in trades] == [f["tradeId"] for f in body["fills"]]
    assert trades[0]["isBuyer"] is True and trades[0]["isMaker"] is False


async def test_order_response_types_and_a_crossing_limit_order(
    fake: FakeBinance, client: Client
) -> None:
    ack = {**limit_buy("r-1"), "newOrderRespType": "ACK"}
    status, body, _ = await client.call("POST", "/api/v3/order", ack)
    assert status == 200 and set(body) == {
        "symbol",
        "orderId",
        "orderListId",
        "clientOrderId",
        "transactTime",
    }
    crossing = {**limit_buy("r-2", qty="0.02", price="50001"), "newOrderRespType": "RESULT"}
    status, body, _ = await client.call("POST", "/api/v3/order", crossing)
    assert status == 200 and "fills" not in body
    assert (body["status"], body["executedQty"]) == ("PARTIALLY_FILLED", "0.01000000")

    # The book moves through the rest of it: it fills at its own price, as maker.
    fake.set_book(SYMBOL, bids=[("49000", "1")], asks=[("50000", "1")])
    assert fake.order("r-2").status == "FILLED"
    assert fake.trades[-1].is_maker and fake.trades[-1].price == Decimal("50001")

    status, open_orders, _ = await client.call("GET", "/api/v3/openOrders", {"symbol": SYMBOL})
    assert [o["clientOrderId"] for o in open_orders] == ["r-1"]
    status, cancelled, _ = await client.call("DELETE", "/api/v3/openOrders", {"symbol": SYMBOL})
    assert [o["status"] for o in cancelled] == ["CANCELED"]


@pytest.mark.parametrize(
    ("change", "code", "msg"),
    [
        ({"quantity": "0.000001"}, -1013, "Filter failure: LOT_SIZE"),
        ({"quantity": "0.000015"}, -1013, "Filter failure: LOT_SIZE"),
        ({"price": "49000.001"}, -1013, "Filter failure: PRICE_FILTER"),
        ({"quantity": "0.0001", "price": "100"}, -1013, "Filter failure: NOTIONAL"),
        ({"quantity": "30"}, -2010, "Account has insufficient balance for requested action."),
        ({"newClientOrderId": "has space"}, -1100, None),
        ({"newClientOrderId": "x" * 37}, -1100, None),
        ({"side": "HOLD"}, -1117, "Invalid side."),
        ({"timeInForce": ""}, -1102, None),
        ({"symbol": "NOPE"}, -1121, "Invalid symbol."),
    ],
)
async def test_orders_binance_refuses(
    client: Client, change: dict[str, str], code: int, msg: str | None
) -> None:
    status, body, _ = await client.call("POST", "/api/v3/order", {**limit_buy("f-1"), **change})

    assert status == 400 and body["code"] == code
    if msg is not None:
        assert body["msg"] == msg


# -- market data -----------------------------------------------------------------------


async def test_depth_diffs_continue_the_snapshot_and_a_skip_makes_a_gap(
    fake: FakeBinance, client: Client
) -> None:
    url = fake.endpoints().combined_streams_url(["btcusdt@depth@100ms"])
    async with client.session.ws_connect(url) as ws:
        await fake.wait_for_streams("btcusdt@depth@100ms")
        _, snapshot, headers = await client.call(
            "GET", "/api/v3/depth", {"symbol": SYMBOL, "limit": "10"}, signed=False
        )
        assert headers["X-MBX-USED-WEIGHT-1m"] == "5"
        await fake.publish_depth(SYMBOL, bids=[("50000", "2"), ("49999", "1")])
        await fake.publish_depth(SYMBOL, asks=[("50001", "0")])
        fake.skip_depth_ids(SYMBOL, 3)
        await fake.publish_depth(SYMBOL, bids=[("49998", "1")])

        diffs = [(await ws.receive_json(timeout=WAIT_S))["data"] for _ in range(3)]

    first, second, after_gap = diffs
    assert first["U"] == snapshot["lastUpdateId"] + 1 and first["u"] == first["U"] + 1
    assert second["U"] == first["u"] + 1
    assert after_gap["U"] == second["u"] + 1 + 3
    assert first["b"] == [["50000.00000000", "2.00000000"], ["49999.00000000", "1.00000000"]]
    assert second["a"] == [["50001.00000000", "0.00000000"]]


async def test_raw_streams_subscribe_and_carry_trades_tickers_and_klines(
    fake: FakeBinance, client: Client
) -> None:
    async with client.session.ws_connect(fake.streams_url) as ws:
        names = ["btcusdt@trade", "btcusdt@bookTicker", "btcusdt@kline_1m"]
        await ws.send_json({"method": "SUBSCRIBE", "params": names, "id": 1})
        assert await ws.receive_json(timeout=WAIT_S) == {"result": None, "id": 1}
        await fake.publish_trade(SYMBOL, "50000.5", "0.2", buyer_is_maker=True)
        fake.set_book(SYMBOL, bids=[("50000.5", "1")], asks=[("50001", "1")])
        kline = await fake.close_kline(SYMBOL, open="50000", close="50010", volume="3")
        trade, ticker, closed = [await ws.receive_json(timeout=WAIT_S) for _ in range(3)]

    assert (trade["e"], trade["p"], trade["q"], trade["m"]) == (
        "trade",
        "50000.50000000",
        "0.20000000",
        True,
    )
    assert (ticker["b"], ticker["a"]) == ("50000.50000000", "50001.00000000")
    assert closed["e"] == "kline" and closed["k"]["x"] is True and closed["k"] == kline
    _, rows, _ = await client.call(
        "GET", "/api/v3/klines", {"symbol": SYMBOL, "interval": "1m"}, signed=False
    )
    assert rows[-1][0] == kline["t"] and rows[-1][4] == "50010.00000000"


async def test_streams_drop_and_close_after_n_messages(fake: FakeBinance, client: Client) -> None:
    fake.streams_disconnect_after = 2
    async with client.session.ws_connect(f"{fake.streams_url}/btcusdt@trade") as ws:
        await fake.wait_for_streams("btcusdt@trade")
        for price in ("1", "2", "3"):
            await fake.publish_trade(SYMBOL, price, "1")
        got = [await ws.receive(timeout=WAIT_S) for _ in range(3)]
    assert [m.type for m in got] == [aiohttp.WSMsgType.TEXT] * 2 + [aiohttp.WSMsgType.CLOSE]

    fake.streams_disconnect_after = None
    async with client.session.ws_connect(f"{fake.streams_url}/btcusdt@trade") as ws:
        await fake.wait_for_streams("btcusdt@trade")
        await fake.drop_streams()
        assert (await ws.receive(timeout=WAIT_S)).type == aiohttp.WSMsgType.CLOSE


# -- limits and faults -----------------------------------------------------------------


async def test_weight_past_the_budget_is_429_then_418(client: Client) -> None:
    client.fake.limits.weight_limit = 45  # two exchangeInfo calls (20 each) and a bit
    answers = [await client.call("GET", "/api/v3/exchangeInfo", signed=False) for _ in range(7)]
    statuses = [status for status, _, _ in answers]

    assert statuses == [200, 200, 429, 429, 429, 418, 418]
    _, refused, headers = answers[2]
    assert refused["code"] == -1003 and "request weight" in refused["msg"]
    assert 1 <= int(headers["Retry-After"]) <= 60
    _, banned, headers = answers[5]
    assert "banned until" in banned["msg"] and int(headers["Retry-After"]) == 120


async def test_injected_429_and_418_carry_retry_after_and_place_nothing(
    fake: FakeBinance, client: Client
) -> None:
    fake.fail_next("/api/v3/order", Fault.RATE_429)
    fake.fail_next("/api/v3/order", Fault.BAN_418)
    first = await client.call("POST", "/api/v3/order", limit_buy("l-1"))
    second = await client.call("POST", "/api/v3/order", limit_buy("l-1"))

    assert (first[0], first[2]["Retry-After"]) == (429, "1")
    assert (second[0], second[2]["Retry-After"]) == (418, "120")
    assert fake.orders == {}


async def test_timeout_with_apply_places_the_order_the_client_never_hears_of(
    fake: FakeBinance, client: Client
) -> None:
    fake.fail_next("/api/v3/order", Fault.TIMEOUT, apply=True)
    with pytest.raises(TimeoutError):
        await client.call("POST", "/api/v3/order", limit_buy("t-1"), timeout_s=0.3)

    assert fake.order("t-1").status == "NEW"
    _, queried, _ = await client.call(
        "GET", "/api/v3/order", {"symbol": SYMBOL, "origClientOrderId": "t-1"}
    )
    assert queried["status"] == "NEW"

    fake.fail_next("/api/v3/order", Fault.TIMEOUT, apply=False)
    with pytest.raises(TimeoutError):
        await client.call("POST", "/api/v3/order", limit_buy("t-2"), timeout_s=0.3)
    assert [o.client_order_id for o in fake.orders.values()] == ["t-1"]


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [(Fault.HTTP_500, 500, -1001), (Fault.HTTP_503, 503, -1008), (Fault.CODE_1007, 408, -1007)],
)
async def test_unknown_outcome_answers_with_the_order_placed_or_not(
    fake: FakeBinance, client: Client, fault: Fault, status: int, code: int
) -> None:
    fake.fail_next("/api/v3/order", fault, apply=True)
    fake.fail_next("/api/v3/order", fault, apply=False)
    placed = await client.call("POST", "/api/v3/order", limit_buy("u-1"))
    lost = await client.call("POST", "/api/v3/order", limit_buy("u-2"))

    assert [(s, b["code"]) for s, b, _ in (placed, lost)] == [(status, code)] * 2
    assert [o.client_order_id for o in fake.orders.values()] == ["u-1"]


async def test_dropped_connection_with_apply_places_the_order(
    fake: FakeBinance, client: Client
) -> None:
    fake.fail_next("/api/v3/order", Fault.DROP, apply=True)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.call("POST", "/api/v3/order", limit_buy("d-1"))

    assert fake.order("d-1").status == "NEW"
    posts = [r for r in fake.requests if r.method == "POST"]
    assert len(posts) == 1 and "signature" not in posts[0].params


# -- the WebSocket API and user data ----------------------------------------------------


async def ws_api_call(
    ws: aiohttp.ClientWebSocketResponse, ident: str, method: str, **params: Any
) -> Any:
    await ws.send_json({"id": ident, "method": method, "params": params})
    while True:
        message = await ws.receive_json(timeout=WAIT_S)
        if message.get("id") == ident:
            return message


async def subscribe(ws: aiohttp.ClientWebSocketResponse, secret: str = SECRET) -> Any:
    params: dict[str, Any] = {"apiKey": KEY, "timestamp": now_ms()}
    params["signature"] = sign(ws_api_payload(params), secret)
    return await ws_api_call(ws, "sub", "userDataStream.subscribe.signature", **params)


async def test_ws_api_ping_time_and_a_refused_signature(fake: FakeBinance, client: Client) -> None:
    async with client.session.ws_connect(fake.ws_api_url) as ws:
        pong = await ws_api_call(ws, "1", "ping")
        clock = await ws_api_call(ws, "2", "time")
        refused = await subscribe(ws, secret="wrong")

    assert (pong["status"], pong["result"]) == (200, {})
    assert pong["rateLimits"][0]["rateLimitType"] == "REQUEST_WEIGHT"
    assert abs(clock["result"]["serverTime"] - now_ms()) < 5_000
    assert (refused["status"], refused["error"]["code"]) == (400, -1022)


async def test_user_data_events_arrive_after_a_fill(fake: FakeBinance, client: Client) -> None:
    async with client.session.ws_connect(fake.ws_api_url) as ws:
        subscribed = await subscribe(ws)
        assert subscribed["status"] == 200
        sub = subscribed["result"]["subscriptionId"]
        await fake.wait_for_user_stream()
        await client.call("POST", "/api/v3/order", limit_buy("w-1", qty="0.03"))
        await fake.fill("w-1", Decimal("0.01"), Decimal("49000"))
        await fake.deposit("USDT", "25")
        events = [await ws.receive_json(timeout=WAIT_S) for _ in range(6)]
        unsubscribed = await ws_api_call(ws, "u", "userDataStream.unsubscribe")

    assert {e["subscriptionId"] for e in events} == {sub}
    kinds = [(e["event"]["e"], e["event"].get("x")) for e in events]
    assert kinds == [
        ("executionReport", "NEW"),
        ("outboundAccountPosition", None),
        ("executionReport", "TRADE"),
        ("outboundAccountPosition", None),
        ("balanceUpdate", None),
        ("outboundAccountPosition", None),
    ]
    trade = events[2]["event"]
    assert (trade["c"], trade["X"], trade["l"], trade["z"], trade["L"]) == (
        "w-1",
        "PARTIALLY_FILLED",
        "0.01000000",
        "0.01000000",
        "49000.00000000",
    )
    assert (trade["n"], trade["N"], trade["t"], trade["m"]) == (
        "0.00001000",
        "BTC",
        fake.trades[-1].trade_id,
        True,
    )
    position = {b["a"]: (b["f"], b["l"]) for b in events[3]["event"]["B"]}
    assert position["USDT"] == (f"{Decimal(1000000) - 1470:.8f}", f"{Decimal(980):.8f}")
    assert events[4]["event"]["d"] == "25.00000000"
    assert unsubscribed["status"] == 200


async def test_dropped_user_stream_can_be_subscribed_again(
    fake: FakeBinance, client: Client
) -> None:
    async with client.session.ws_connect(fake.ws_api_url) as ws:
        assert (await subscribe(ws))["status"] == 200
        await fake.drop_user_stream()
        assert (await ws.receive(timeout=WAIT_S)).type == aiohttp.WSMsgType.CLOSE
    async with client.session.ws_connect(fake.ws_api_url) as ws:
        assert (await subscribe(ws))["status"] == 200
        again = await subscribe(ws)
    assert again["error"]["code"] == -2035
    assert [r.path for r in fake.requests if r.method == "WS"].count(
        "userDataStream.subscribe.signature"
    ) == 3
    assert all("apiKey" not in r.params for r in fake.requests)


async def test_endpoints_point_at_the_fake(fake: FakeBinance) -> None:
    endpoints = fake.endpoints()
    assert endpoints.rest == endpoints.trade_rest == fake.rest_url
    assert endpoints.ws_api == fake.ws_api_url
    assert endpoints.streams.endswith("/ws") and fake.rest_url.startswith("http://127.0.0.1:")
    await asyncio.sleep(0)


async def test_the_server_pings_and_answers_pings() -> None:
    async with (
        FakeBinance(api_key=KEY, secret=SECRET, ping_interval_s=0.05) as fake,
        aiohttp.ClientSession() as session,
        session.ws_connect(fake.streams_url, autoping=False) as ws,
    ):
        assert (await ws.receive(timeout=WAIT_S)).type == aiohttp.WSMsgType.PING
        await ws.pong()
        await ws.ping(b"payload")
        pong = await ws.receive(timeout=WAIT_S)
        while pong.type == aiohttp.WSMsgType.PING:
            await ws.pong(pong.data)
            pong = await ws.receive(timeout=WAIT_S)
        assert (pong.type, pong.data) == (aiohttp.WSMsgType.PONG, b"payload")
