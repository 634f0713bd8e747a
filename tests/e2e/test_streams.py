"""The streams of `veloz engine --port` as a subprocess on a journal that already holds
orders: SSE ids continue the journal's sequence and resume without gap, the order and
market WebSockets deliver, and SIGTERM with open streams still exits 0 within 5 s."""

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.processes import free_port, start_veloz, veloz_env

WITHIN_S = 10.0


class Service:
    def __init__(self, wal_dir: Path) -> None:
        self.port = free_port()
        self.process = start_veloz(
            ["engine", "--port", str(self.port), "--host", "127.0.0.1"], veloz_env(wal_dir)
        )
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=WITHIN_S)
        self.ws_url = f"ws://127.0.0.1:{self.port}"

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.stderr()
            with contextlib.suppress(httpx.TransportError):
                if (await self.http.get("/health")).json().get("phase") == "ready":
                    return
            await asyncio.sleep(0.05)  # another process: there is no event to await
        pytest.fail("the engine did not become ready")

    async def place(self, coid: str, price: int = 40000) -> None:
        order = {"side": "BUY", "symbol": "BTCUSDT", "qty": 0.01, "price": price}
        response = await self.http.post("/api/order", json=order | {"client_order_id": coid})
        assert response.status_code < 300, response.text

    def stderr(self) -> str:
        return self.process.stderr.read().decode() if self.process.stderr else ""

    async def close(self) -> None:
        await self.http.aclose()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, list[int]]:
    """A journal holding 5 resting orders placed over stdio; their events' sequences."""
    wal_dir = tmp_path / "wal"
    orders = "".join(f"ORDER BUY BTCUSDT 0.01 {40000 + i} seed-{i}\n" for i in range(5))
    stdio = start_veloz(["engine", "--stdio"], veloz_env(wal_dir))
    out, err = stdio.communicate(orders.encode(), timeout=60)
    assert stdio.returncode == 0, err.decode()
    events = [json.loads(line) for line in out.splitlines()]
    return wal_dir, [e["seq"] for e in events if e["type"] == "order_update" and "seq" in e]


@pytest.fixture
async def service(seeded: tuple[Path, list[int]]) -> AsyncIterator[Service]:
    running = Service(seeded[0])
    try:
        await running.wait_ready()
        yield running
    finally:
        await running.close()


@contextlib.asynccontextmanager
async def sse(
    service: Service, path: str, **headers: str
) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
    async with service.http.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200
        yield frames(response)


async def frames(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Each SSE event as {"id", "event", "data"}; comments are skipped."""
    frame: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line == "":
            if frame:
                yield frame
            frame = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(": ")
            frame[field] = int(value) if field == "id" else value
            if field == "data":
                frame["data"] = json.loads(value)


async def take(stream: AsyncIterator[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    async with asyncio.timeout(WITHIN_S):
        return [await anext(stream) for _ in range(count)]


async def receive(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(WITHIN_S):
        message: dict[str, Any] = json.loads(await ws.recv())
        return message


async def subscribe_btc(ws: ClientConnection, channels: list[str]) -> None:
    await ws.send(json.dumps({"action": "subscribe", "symbols": ["BTCUSDT"], "channels": channels}))
    assert (await receive(ws))["type"] == "subscribed"


async def test_order_events_reach_sse_and_the_orders_socket_and_resume_without_gap(service, seeded):
    _, seeded_seqs = seeded
    async with (
        sse(service, "/api/stream?types=order_update,fill") as live,
        connect(service.ws_url + "/ws/orders") as orders,
    ):
        await service.place("http-0")
        await service.place("http-1")
        events = await take(live, 4)  # each order: submitted, then accepted by the sim venue
        # The two orders' events may interleave (http-1 can be submitted before http-0 is
        # accepted); each order's own come in order.
        for coid in ("http-0", "http-1"):
            statuses = [e["data"]["status"] for e in events if e["data"]["client_order_id"] == coid]
            assert statuses == ["PENDING_NEW", "ACCEPTED"], (coid, events)
        ids = [e["id"] for e in events]
        assert ids == sorted(ids) and ids[0] > max(seeded_seqs)  # the journal's sequence
        pushed = [await receive(orders) for _ in range(4)]
        assert [m["seq"] for m in pushed] == ids and {m["type"] for m in pushed} == {"order_update"}
        async with (
            sse(
                service, "/api/stream?types=order_update", **{"Last-Event-ID": str(ids[0])}
            ) as by_header,
            sse(service, f"/api/stream?last_id={ids[1]}&types=order_update") as by_query,
        ):
            assert [e["id"] for e in await take(by_header, 3)] == ids[1:]
            assert [e["id"] for e in await take(by_query, 2)] == ids[2:]
            await service.place("http-2")
            newest = [e["id"] for e in await take(live, 2)]
            assert [e["id"] for e in await take(by_query, 2)] == newest
            assert [e["id"] for e in await take(by_header, 2)] == newest


async def test_market_socket_streams_the_sim_market(service):
    async with connect(service.ws_url + "/ws/market") as ws:
        await subscribe_btc(ws, ["trade", "book_top"])
        seen: set[str] = set()
        while seen != {"trade", "book_top"}:
            message = await receive(ws)
            assert message["symbol"] == "BTCUSDT"
            seen.add(message["type"])
            if message["type"] == "book_top":
                assert 0 < message["bid"] < message["ask"]
        await ws.send(
            json.dumps({"action": "subscribe", "symbols": ["NOPE"], "channels": ["trade"]})
        )
        while (error := await receive(ws))["type"] != "error":
            pass
        assert error["error"] == "unknown_symbol" and "NOPE" in error["message"]


async def test_sigterm_with_open_streams_exits_0_within_5_s(service):
    async with contextlib.AsyncExitStack() as stack:
        streams = [await stack.enter_async_context(sse(service, "/api/stream")) for _ in range(3)]
        for stream in streams:  # each is attached: it receives the sim market
            assert (await take(stream, 1))[0]["event"] == "market"
        ws = await stack.enter_async_context(connect(service.ws_url + "/ws/market"))
        await subscribe_btc(ws, ["book_top"])
        await receive(ws)
        started = time.monotonic()
        service.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(5):
            for stream in streams:
                async for _ in stream:  # the server ends each stream
                    pass
            with pytest.raises(ConnectionClosed):
                while True:
                    await ws.recv()
        code = await asyncio.to_thread(service.process.wait, 10)
        assert code == 0, service.stderr()
        assert time.monotonic() - started < 5


async def test_resume_from_before_a_restart_asks_the_client_to_refetch(service, seeded):
    _, seeded_seqs = seeded
    headers = {"Last-Event-ID": str(seeded_seqs[0])}
    async with sse(service, "/api/stream?types=order_update,reset", **headers) as stream:
        await service.place("after-restart")
        first = (await take(stream, 1))[0]
        assert first["event"] == "reset"
