"""A server-side WebSocket with an ordered outbox: events are queued synchronously (so
`set_book` need not be awaited) and a sender task writes them in order. The socket closes
itself after `close_after` messages, Binance's 24-hour disconnect in miniature."""

import asyncio
import contextlib
import json

from aiohttp import WSCloseCode, web

_CLOSE = object()


class Outbox:
    def __init__(
        self, ws: web.WebSocketResponse, request: web.Request, close_after: int | None
    ) -> None:
        self.ws = ws
        self.request = request
        self.sent = 0
        self.close_after = close_after
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._sender = asyncio.create_task(self._send_all())

    def put(self, message: dict[str, object]) -> None:
        self._queue.put_nowait(message)

    def close_later(self) -> None:
        """Close once what is queued has gone out."""
        self._queue.put_nowait(_CLOSE)

    async def drop(self, *, abrupt: bool = False) -> None:
        """Close now: a clean close frame (1001 going away) or, `abrupt`, the TCP
        connection cut without one."""
        self._sender.cancel()
        transport = self.request.transport
        if abrupt and transport is not None:
            transport.abort()
        with contextlib.suppress(Exception):
            await self.ws.close(code=WSCloseCode.GOING_AWAY)

    async def finish(self) -> None:
        self._sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sender

    async def _send_all(self) -> None:
        while True:
            message = await self._queue.get()
            if message is _CLOSE:
                await self.ws.close(code=WSCloseCode.GOING_AWAY)
                return
            try:
                await self.ws.send_str(json.dumps(message, separators=(",", ":")))
            except (ConnectionError, RuntimeError):
                return
            self.sent += 1
            if self.close_after is not None and self.sent >= self.close_after:
                await self.ws.close(code=WSCloseCode.GOING_AWAY)
                return
