"""`GET /api/internal/feed`: the engine's market data and risk alerts for its gateways
(`veloz.engine.views.feed` has the framing). One connection per gateway, whatever the
number of its clients; a gateway that reads too slowly is cut off and connects again."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from litestar import Request, get
from litestar.response import Stream

from veloz.api.deps import Client
from veloz.api.errors import error_responses
from veloz.engine.bus import BusMessage
from veloz.engine.views.feed import MEDIA_TYPE, feed_frame

# Frames queued for one gateway before it counts as gone (a few seconds of quotes).
FEED_QUEUE_FRAMES = 10_000
_CUT = b""


async def _frames(client: Client, shutdown: asyncio.Event) -> AsyncIterator[bytes]:
    queue: asyncio.Queue[bytes] = asyncio.Queue(FEED_QUEUE_FRAMES + 1)

    def on_bus(message: BusMessage) -> None:
        frame = feed_frame(message)
        if frame is None or queue.full():
            return
        queue.put_nowait(frame if queue.qsize() < FEED_QUEUE_FRAMES else _CUT)

    unsubscribe = client.subscribe(on_bus)
    stopping = asyncio.ensure_future(shutdown.wait())
    try:
        yield b""  # the headers go out at once: the gateway knows it is connected
        while True:
            taking = asyncio.ensure_future(queue.get())
            await asyncio.wait((taking, stopping), return_when=asyncio.FIRST_COMPLETED)
            if not taking.done():
                taking.cancel()
                return
            frames = [taking.result()]
            while not queue.empty():
                frames.append(queue.get_nowait())
            if _CUT in frames:
                return  # too slow: what it missed is gone, it reconnects for fresh data
            yield b"".join(frames)
    finally:
        unsubscribe()
        stopping.cancel()


@get(
    "/api/internal/feed",
    media_type=MEDIA_TYPE,
    summary="Market data and risk alerts for gateways (length-prefixed MessagePack)",
    tags=["streams"],
    responses=error_responses(),
)
async def internal_feed(request: Request[Any, Any, Any], engine_client: Client) -> Stream:
    return Stream(
        _frames(engine_client, request.app.state.shutdown),
        media_type=MEDIA_TYPE,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
