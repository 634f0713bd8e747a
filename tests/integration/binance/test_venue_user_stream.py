"""The user data stream's connection handling (`binance_user_stream.py`) against a bare
WebSocket API server on loopback that the test drives frame by frame: subscription by
signature, events, a drop (down, then up after a gap), serverShutdown and the 24-hour
rotation (the next connection subscribed before the old one closes: no gap),
eventStreamTerminated, a refused subscription, and frames that are not JSON."""

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from veloz.execution.venues.binance_stats import VenueStats
from veloz.execution.venues.binance_user_stream import SUBSCRIBE, UserDataStream

WAIT_S = 5.0


class WsApi:
    """A WebSocket API endpoint that answers the subscription and lets the test push."""

    def __init__(self) -> None:
        self.sockets: list[web.WebSocketResponse] = []
        self.subscriptions: list[dict[str, Any]] = []
        self.refuse: dict[str, Any] | None = None
        self.changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws-api/v3", self._serve)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"ws://127.0.0.1:{port}/ws-api/v3"

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _serve(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        async for message in ws:
            data = json.loads(message.data)
            if data["method"] == SUBSCRIBE:
                self.subscriptions.append(data["params"])
                if self.refuse is not None:
                    answer = {"id": data["id"], "status": 400, "error": self.refuse}
                else:
                    answer = {"id": data["id"], "status": 200, "result": {"subscriptionId": 0}}
                await ws.send_str(json.dumps(answer))
        self.changed.set()
        return ws

    @property
    def open_sockets(self) -> list[web.WebSocketResponse]:
        return [ws for ws in self.sockets if not ws.closed]

    async def push(self, event: dict[str, Any]) -> None:
        await self.open_sockets[-1].send_str(json.dumps({"subscriptionId": 0, "event": event}))


class Listener:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.ups: list[bool] = []  # whether each "up" came after a gap
        self.downs: list[str] = []
        self.resyncs = 0
        self._changed = asyncio.Event()

    def on_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self._changed.set()

    def on_up(self, after_gap: bool) -> None:
        self.ups.append(after_gap)
        self._changed.set()

    def on_down(self, reason: str) -> None:
        self.downs.append(reason)
        self._changed.set()

    async def resync(self) -> int:
        self.resyncs += 1
        self._changed.set()
        return 0

    async def until(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT_S):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def server() -> AsyncIterator[WsApi]:
    api = WsApi()
    await api.start()
    yield api
    await api.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


class Running:
    def __init__(self, stream: UserDataStream, listener: Listener, stats: VenueStats) -> None:
        self.stream = stream
        self.listener = listener
        self.stats = stats


@pytest.fixture
async def running(
    server: WsApi, session: aiohttp.ClientSession, request: pytest.FixtureRequest
) -> AsyncIterator[Running]:
    options = getattr(request, "param", {})
    listener, stats = Listener(), VenueStats()
    stream = UserDataStream(
        server.url,
        lambda: {"apiKey": "k", "timestamp": "1", "signature": "sig"},
        on_event=listener.on_event,
        on_up=listener.on_up,
        on_down=listener.on_down,
        resync=listener.resync,
        session=session,
        stats=stats,
        reconnect_delay_s=0.01,
        max_reconnect_delay_s=0.05,
        **options,
    )
    task = asyncio.get_running_loop().create_task(stream.run())
    yield Running(stream, listener, stats)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


EVENT = {"e": "executionReport", "E": 1, "c": "x"}


async def test_subscribes_by_signature_and_delivers_events(server: WsApi, running: Running) -> None:
    listener = running.listener
    await listener.until(lambda: listener.ups == [True])

    await server.push(EVENT)
    await listener.until(lambda: listener.events == [EVENT])

    assert server.subscriptions == [{"apiKey": "k", "timestamp": "1", "signature": "sig"}]
    assert running.stats.user_stream_connected and running.stream.up


async def test_drop_goes_down_then_up_after_a_gap(server: WsApi, running: Running) -> None:
    listener = running.listener
    await listener.until(lambda: len(listener.ups) == 1)

    await server.open_sockets[-1].close()
    await listener.until(lambda: listener.downs == ["closed"])
    await listener.until(lambda: len(listener.ups) == 2)

    assert listener.ups == [True, True]  # the second "up" follows a gap: poll it
    assert running.stats.reconnects == 1 and running.stats.user_stream_connected
    assert "closed" in running.stats.last_error["ws-api"]


async def test_server_shutdown_moves_to_a_new_connection_without_a_gap(
    server: WsApi, running: Running
) -> None:
    listener = running.listener
    await listener.until(lambda: len(listener.ups) == 1)
    old = server.open_sockets[-1]

    await server.push({"e": "serverShutdown", "E": 1})
    await listener.until(lambda: len(listener.ups) == 2)

    assert listener.ups == [True, False] and listener.downs == []
    assert len(server.subscriptions) == 2
    # The old connection kept reading until the new one was subscribed, then closed.
    await asyncio.wait_for(server.changed.wait(), WAIT_S)
    assert old.closed and len(server.open_sockets) == 1


@pytest.mark.parametrize("running", [{"rotate_after_s": 0.2}], indirect=True)
async def test_connection_is_rotated_before_binance_closes_it(
    server: WsApi, running: Running
) -> None:
    listener = running.listener
    await listener.until(lambda: len(listener.ups) >= 2)

    assert listener.ups[:2] == [True, False] and listener.downs == []


async def test_event_stream_terminated_resubscribes(server: WsApi, running: Running) -> None:
    listener = running.listener
    await listener.until(lambda: len(listener.ups) == 1)

    await server.push({"e": "eventStreamTerminated", "E": 1})
    await listener.until(lambda: len(listener.ups) == 2)

    assert listener.downs == ["terminated"]
    assert len(server.subscriptions) == 2


async def test_refused_subscription_is_retried_and_a_stale_clock_resynced(
    server: WsApi, running: Running
) -> None:
    server.refuse = {
        "code": -1021,
        "msg": "Timestamp for this request is outside of the recvWindow.",
    }
    listener = running.listener
    await listener.until(lambda: listener.resyncs >= 1)
    assert listener.ups == []
    assert "-1021" in running.stats.last_error["ws-api"]

    server.refuse = None
    await listener.until(lambda: listener.ups == [True])


async def test_frames_that_are_not_json_are_counted_and_skipped(
    server: WsApi, running: Running
) -> None:
    listener = running.listener
    await listener.until(lambda: len(listener.ups) == 1)

    await server.open_sockets[-1].send_str("not json")
    await server.open_sockets[-1].send_str("[1, 2]")
    await server.push(EVENT)
    await listener.until(lambda: listener.events == [EVENT])

    assert running.stats.malformed == 2 and listener.downs == []
