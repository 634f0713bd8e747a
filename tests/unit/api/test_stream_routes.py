"""`/api/stream`, `/ws/market` and `/ws/orders` over a real uvicorn server on loopback
(SSE cannot be tested through an in-process transport: it buffers), on a real engine
whose market data the tests feed."""

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.engine import quote, wait_for_status
from veloz.api.app import create_app
from veloz.api.stream_hub import StreamHub
from veloz.api.streams import hub_of
from veloz.config import Settings
from veloz.model.commands import SubmitOrder
from veloz.model.enums import OrderSide, OrderStatus
from veloz.model.market import TradeTick
from veloz.runtime.client import LocalEngineClient
from veloz.runtime.live import LiveEngine

WITHIN_S = 5.0


@dataclass
class Served:
    http: httpx.AsyncClient
    ws_url: str
    hub: StreamHub
    shutdown: asyncio.Event


@dataclass
class Frame:
    id: int | None = None
    event: str | None = None
    data: Any = None
    raw_data: str = ""
    comment: str | None = None


@pytest.fixture
def hub_options() -> dict[str, Any]:
    return {}


@pytest.fixture
async def served(engine: LiveEngine, hub_options: dict[str, Any]) -> AsyncIterator[Served]:
    shutdown = asyncio.Event()
    client = LocalEngineClient(engine)
    app = create_app(client, shutdown=shutdown)
    hub = app.state.stream_hub = StreamHub(client, shutdown, **hub_options)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)  # connections queue here until uvicorn accepts: no start-up race
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=WITHIN_S)
    try:
        yield Served(http, f"ws://127.0.0.1:{port}", hub, shutdown)
    finally:
        shutdown.set()
        server.should_exit = True
        await http.aclose()
        await serving
        listener.close()


@contextlib.asynccontextmanager
async def sse(served: Served, path: str = "/api/stream", **headers: str):
    async with served.http.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield frames(response)


async def frames(response: httpx.Response) -> AsyncIterator[Frame]:
    frame = Frame()
    async for line in response.aiter_lines():
        if line == "":
            yield frame
            frame = Frame()
        elif line.startswith(":"):
            frame.comment = line[1:].strip()
        else:
            field, _, value = line.partition(": ")
            if field == "id":
                frame.id = int(value)
            elif field == "event":
                frame.event = value
            elif field == "data":
                frame.raw_data, frame.data = value, json.loads(value)


async def take(stream: AsyncIterator[Frame], count: int) -> list[Frame]:
    async with asyncio.timeout(WITHIN_S):
        return [await anext(stream) for _ in range(count)]


async def receive(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(WITHIN_S):
        message: dict[str, Any] = json.loads(await ws.recv())
        return message


async def ask(ws: ClientConnection, message: object) -> dict[str, Any]:
    await ws.send(message if isinstance(message, str) else json.dumps(message))
    return await receive(ws)


def resting(coid: str) -> SubmitOrder:
    return SubmitOrder(
        symbol="BTCUSDT",
        side=OrderSide.BUY,
        qty=Decimal("0.01"),
        price=Decimal("40000"),
        client_order_id=coid,
    )


async def place(engine: LiveEngine, *coids: str) -> list[int]:
    """Rest orders far from the market; the journal sequences of their events."""
    for coid in coids:
        await engine.submit(resting(coid))
        await wait_for_status(engine, coid, OrderStatus.ACCEPTED)
    return [m.seq for m in reversed(engine.activity.recent_events(1_000))]


def trade(price: str, ts_ns: int, symbol: str = "BTCUSDT") -> TradeTick:
    return TradeTick(
        symbol=symbol,
        trade_id=f"t{ts_ns}",
        price=Decimal(price),
        size=Decimal("0.5"),
        aggressor=OrderSide.BUY,
        ts_ns=ts_ns,
    )


# -- SSE -----------------------------------------------------------------------------------


async def test_live_events_market_without_id_orders_with_their_journal_sequence(served, engine):
    async with sse(served) as stream:
        engine.market.on_data(quote(bid="50000.5", ask="50001.25"))
        (market,) = await take(stream, 1)
        assert market.event == "market" and market.id is None
        assert '"bid":50000.5' in market.raw_data and market.data["ask"] == 50001.25
        response = await served.http.post(
            "/api/order",
            json={
                "side": "BUY",
                "symbol": "BTCUSDT",
                "qty": 0.01,
                "type": "MARKET",
                "client_order_id": "h1",
            },
        )
        assert response.status_code < 300, response.text
        events = await take(stream, 4)
        assert [e.event for e in events] == ["order_update", "order_update", "fill", "order_update"]
        assert [e.data["event"] for e in events if e.event == "order_update"] == [
            "OrderSubmitted",
            "OrderAccepted",
            "OrderFilled",
        ]
        assert all(e.data["client_order_id"] == "h1" for e in events)
        seqs = [e.data["seq"] for e in events]
        assert [e.id for e in events] == seqs
        assert seqs[0] < seqs[1] < seqs[2] == seqs[3]  # the fill and its update: one entry
        assert events[3].data["status"] == "FILLED" and events[2].data["qty"] == 0.01


@pytest.mark.parametrize("how", ["header", "query"])
async def test_resume_sends_the_missed_events_then_live_ones(served, engine, how):
    seqs = await place(engine, "a", "b", "c")
    headers = {"Last-Event-ID": str(seqs[1])} if how == "header" else {}
    path = "/api/stream?types=order_update" + (f"&last_id={seqs[1]}" if how == "query" else "")
    async with sse(served, path, **headers) as stream:
        backlog = await take(stream, len(seqs) - 2)
        assert [f.id for f in backlog] == seqs[2:]
        seqs = await place(engine, "d")
        live = await take(stream, 2)
        assert [f.id for f in backlog + live] == seqs[2:]


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/api/stream?last_id=abc", {}),
        ("/api/stream", {"Last-Event-ID": "7x"}),
        ("/api/stream?types=market,nonsense", {}),
    ],
)
async def test_bad_stream_parameters_are_400_json(served, path, headers):
    response = await served.http.get(path, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_params"


@pytest.mark.parametrize("hub_options", [{"keepalive_s": 0.05}])
async def test_an_idle_stream_gets_keep_alive_comments(served):
    async with sse(served) as stream:
        assert [f.comment for f in await take(stream, 2)] == ["keep-alive", "keep-alive"]


@pytest.mark.parametrize("hub_options", [{"mailbox_size": 8}])
async def test_a_client_that_stops_reading_is_cut_off_and_the_others_are_not(served, engine):
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    port = served.http.base_url.port
    slow.connect(("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=slow, limit=4096)
    writer.write(b"GET /api/stream HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    big = "X" * 65_536  # big frames fill the socket buffers quickly
    sent = 0
    async with sse(served) as fast:
        while served.hub.slow_dropped == 0:
            for _ in range(4):
                engine.bus.publish(quote(symbol=big))
            sent += 4
            assert len(await take(fast, 4)) == 4
            assert sent < 2_000, "the client that does not read was never cut off"
        assert served.hub.sse_clients == 1
        engine.bus.publish(quote(symbol="BTCUSDT"))
        assert (await take(fast, 1))[0].data["symbol"] == "BTCUSDT"
    async with asyncio.timeout(WITHIN_S):  # what was sent drains, then the stream ends
        while not (await reader.read(1 << 20)).endswith(b"0\r\n\r\n"):
            pass
    writer.close()


async def test_shutdown_ends_every_open_stream(served):
    async with contextlib.AsyncExitStack() as open_streams:
        streams = [await open_streams.enter_async_context(sse(served)) for _ in range(3)]
        market = await open_streams.enter_async_context(connect(served.ws_url + "/ws/market"))
        orders = await open_streams.enter_async_context(connect(served.ws_url + "/ws/orders"))
        assert (await ask(orders, {"type": "ping"}))["type"] == "pong"
        served.shutdown.set()
        async with asyncio.timeout(WITHIN_S):
            for stream in streams:
                assert [frame async for frame in stream] == []
            for ws in (market, orders):
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert served.hub.sse_clients == served.hub.ws_clients == 0


# -- WebSockets ----------------------------------------------------------------------------


async def test_market_socket_sends_what_was_subscribed(served, engine):
    async with connect(served.ws_url + "/ws/market") as ws:
        subscribed = await ask(
            ws,
            {
                "action": "subscribe",
                "symbols": ["btcusdt"],
                "channels": ["trade", "book_top", "kline"],
            },
        )
        assert subscribed == {
            "type": "subscribed",
            "symbols": ["BTCUSDT"],
            "channels": ["trade", "book_top", "kline"],
        }
        engine.market.on_data(quote("ETHUSDT", "3000", "3001"))  # not subscribed
        engine.market.on_data(quote(bid="50000.5", ask="50001"))
        book = await receive(ws)
        assert book["type"] == "book_top" and book["symbol"] == "BTCUSDT"
        assert book["bid"] == 50000.5 and book["ask_size"] == 5
        minute = 60_000_000_000
        engine.market.on_data(trade("50000.5", 5 * minute + 1))
        first = await receive(ws)
        assert first["type"] == "trade" and first["price"] == 50000.5 and first["side"] == "BUY"
        engine.market.on_data(trade("50002", 6 * minute + 1))  # closes the 5th minute's bar
        kline = await receive(ws)
        assert kline["type"] == "kline" and kline["closed"] is True and kline["open"] == 50000.5
        assert (await receive(ws))["type"] == "trade"
        unsubscribed = await ask(
            ws, {"action": "unsubscribe", "symbols": ["BTCUSDT"], "channels": ["book_top"]}
        )
        assert unsubscribed["type"] == "unsubscribed"
        engine.market.on_data(quote(bid="50001", ask="50002"))
        engine.market.on_data(trade("50001", 6 * minute + 2))
        assert (await receive(ws))["type"] == "trade"


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_json"),
        ({"action": "subscribe", "symbols": ["DOGEUSDT"], "channels": ["trade"]}, "unknown_symbol"),
        ({"action": "subscribe", "symbols": ["BTCUSDT"], "channels": ["depth"]}, "bad_params"),
        ({"action": "dance"}, "bad_params"),
        ({"type": "pong"}, "bad_params"),
    ],
)
async def test_a_bad_market_message_gets_an_error_and_the_connection_stays(served, message, code):
    async with connect(served.ws_url + "/ws/market") as ws:
        error = await ask(ws, message)
        assert error["type"] == "error" and error["error"] == code and error["message"]
        assert await ask(ws, {"type": "ping"}) == {"type": "pong"}


async def test_orders_socket_sends_order_updates_and_fills(served, engine):
    async with connect(served.ws_url + "/ws/orders") as ws:
        assert await ask(ws, {"type": "ping"}) == {"type": "pong"}
        error = await ask(ws, {"action": "subscribe"})
        assert error["type"] == "error" and error["error"] == "bad_params"
        response = await served.http.post(
            "/api/order",
            json={
                "side": "BUY",
                "symbol": "BTCUSDT",
                "qty": 0.01,
                "type": "MARKET",
                "client_order_id": "w1",
            },
        )
        assert response.status_code < 300, response.text
        messages = [await receive(ws) for _ in range(4)]
        assert [m["type"] for m in messages] == [
            "order_update",
            "order_update",
            "fill",
            "order_update",
        ]
        assert messages[2]["price"] == 50001 and messages[3]["status"] == "FILLED"
        engine.market.on_data(quote())  # market data is not for this stream
        await place(engine, "w2")
        update = await receive(ws)
        assert update["type"] == "order_update" and update["client_order_id"] == "w2"


@pytest.mark.parametrize(
    ("flush_ms", "gateway", "interval_s"),
    [(None, False, 0.0), (None, True, 0.025), (5, False, 0.005), (0, True, 0.0)],
)
async def test_the_hub_gathers_events_for_the_flush_interval_of_its_kind_of_process(
    engine: LiveEngine, flush_ms: float | None, gateway: bool, interval_s: float
):
    """A gateway's thousands of clients cost a socket write each per flush: it gathers
    events by default, the engine does not; VELOZ_STREAM_FLUSH_MS decides for both."""
    client = LocalEngineClient(engine)
    app = create_app(client, Settings(stream_flush_ms=flush_ms), gateway=gateway)
    hub = hub_of(app, client)
    assert hub.flush_interval_s == interval_s
