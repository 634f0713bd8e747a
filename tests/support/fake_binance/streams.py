"""Market streams: raw (`/ws`, `/ws/<stream>`) and combined (`/stream?streams=a/b`)
connections, live SUBSCRIBE/UNSUBSCRIBE/LIST_SUBSCRIPTIONS, and the fan-out of market
events to the sockets subscribed to each stream name (names compared in lowercase;
combined payloads wrapped as `{"stream": ..., "data": ...}`)."""

import asyncio
import json
from collections.abc import Iterable

from aiohttp import WSMsgType, web

from tests.support.fake_binance.market import StreamEvent
from tests.support.fake_binance.sockets import Outbox


class StreamConnection:
    def __init__(self, outbox: Outbox, combined: bool, streams: Iterable[str]) -> None:
        self.outbox = outbox
        self.combined = combined
        self.streams: dict[str, str] = {s.lower(): s for s in streams if s}


class StreamHub:
    def __init__(self, ping_interval_s: float) -> None:
        self.connections: list[StreamConnection] = []
        self.ping_interval_s = ping_interval_s
        self.close_after: int | None = None
        self.connects = 0
        self._changed = asyncio.Condition()

    def publish(self, events: Iterable[StreamEvent]) -> None:
        for name, payload in events:
            for connection in self.connections:
                subscribed = connection.streams.get(name)
                if subscribed is None:
                    continue
                wrapped: dict[str, object] = (
                    {"stream": subscribed, "data": payload} if connection.combined else payload
                )
                connection.outbox.put(wrapped)

    def subscribed(self, name: str) -> int:
        return sum(1 for c in self.connections if name.lower() in c.streams)

    async def wait_for(self, names: Iterable[str], timeout_s: float) -> None:
        wanted = [n.lower() for n in names]
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(lambda: all(self.subscribed(n) for n in wanted))

    async def drop_all(self, *, abrupt: bool = False) -> None:
        for connection in list(self.connections):
            await connection.outbox.drop(abrupt=abrupt)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        # aiohttp answers pings with pongs and, with `heartbeat`, pings every interval and
        # closes a socket whose pong is late: Binance's 20 s ping rule, scaled.
        ws = web.WebSocketResponse(heartbeat=self.ping_interval_s, autoping=True)
        await ws.prepare(request)
        combined = request.path.startswith("/stream")
        if combined:
            names = request.query.get("streams", "").split("/")
        else:
            names = request.match_info.get("streams", "").split("/")
        connection = StreamConnection(Outbox(ws, request, self.close_after), combined, names)
        self.connections.append(connection)
        self.connects += 1
        await self._notify()
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await self._control(connection, message.data)
        finally:
            self.connections.remove(connection)
            await connection.outbox.finish()
            await self._notify()
        return ws

    async def _control(self, connection: StreamConnection, data: str) -> None:
        try:
            request = json.loads(data)
            method = request["method"]
        except (ValueError, KeyError, TypeError):
            connection.outbox.put(
                {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"}
            )
            return
        ident = request.get("id")
        params = request.get("params") or []
        result: object = None
        if method == "SUBSCRIBE":
            connection.streams.update({str(p).lower(): str(p) for p in params})
        elif method == "UNSUBSCRIBE":
            for name in params:
                connection.streams.pop(str(name).lower(), None)
        elif method == "LIST_SUBSCRIPTIONS":
            result = list(connection.streams.values())
        elif method == "GET_PROPERTY" and params == ["combined"]:
            result = connection.combined
        elif method == "SET_PROPERTY" and len(params) == 2 and params[0] == "combined":
            connection.combined = bool(params[1])
        else:
            connection.outbox.put(
                {
                    "code": 2,
                    "msg": f"Invalid request: unknown variant {method}, expected one of "
                    "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, "
                    "`GET_PROPERTY` at line 1 column 28",
                    "id": ident,
                }
            )
            return
        connection.outbox.put({"result": result, "id": ident})
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
