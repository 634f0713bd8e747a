"""The account's user data stream, as Binance's current documentation prescribes: a
WebSocket API connection subscribed with `userDataStream.subscribe.signature` (the REST
listenKey endpoints were retired on 2026-02-20, CHANGELOG.md).

`UserDataStream.run()` keeps one subscription alive: it answers Binance's pings (aiohttp's
autoping) and pings itself so a silent connection is noticed, reconnects with exponential
backoff, jitter and a cap, and subscribes again. A connection lives at most 24 hours and
Binance warns with `serverShutdown` before closing one; both are handled by opening the
next connection and subscribing on it *before* the old one is closed, so no event falls
between them (duplicates are the ledger's to drop). `eventStreamTerminated` ends the
subscription: the connection is replaced.

The venue hears of it through three callbacks: every event, "up" (with whether events may
have been missed since the last time it was up, so the venue can poll the gap), and
"down" (the venue polls over REST until it is up again).
"""

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from veloz.binance.errors import INVALID_TIMESTAMP
from veloz.execution.venues.binance_stats import VenueStats

logger = logging.getLogger(__name__)

SUBSCRIBE = "userDataStream.subscribe.signature"
# Binance closes a WebSocket API connection after 24 hours; move to a new one before.
ROTATE_AFTER_S = 23.5 * 3600
ENDPOINT = "ws-api"


class StreamRefused(Exception):
    """Binance answered the subscription with an error (its code and message kept)."""

    def __init__(self, code: int | None, msg: str) -> None:
        self.code = code
        self.msg = msg
        super().__init__(f"{SUBSCRIBE} -> {code}: {msg}")


class _Connection:
    """One subscribed connection and the task reading it."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.reader: asyncio.Task[None] | None = None
        # Why the connection should be replaced, once it should: "closed",
        # "terminated", "serverShutdown" or "rotate".
        self.reason = ""
        self.ending = asyncio.Event()

    def end(self, reason: str) -> None:
        if not self.reason:
            self.reason = reason
            self.ending.set()

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader
        await self.ws.close()


class UserDataStream:
    def __init__(
        self,
        url: str,
        sign: Callable[[], Mapping[str, str]],
        *,
        on_event: Callable[[dict[str, Any]], None],
        on_up: Callable[[bool], None],
        on_down: Callable[[str], None],
        resync: Callable[[], Awaitable[object]],
        session: aiohttp.ClientSession,
        stats: VenueStats,
        reconnect_delay_s: float = 1.0,
        max_reconnect_delay_s: float = 60.0,
        heartbeat_s: float = 20.0,
        request_timeout_s: float = 10.0,
        rotate_after_s: float = ROTATE_AFTER_S,
    ) -> None:
        self._url = url
        self._sign = sign
        self._on_event = on_event
        self._on_up = on_up
        self._on_down = on_down
        self._resync = resync
        self._session = session
        self._stats = stats
        self._delay_s = reconnect_delay_s
        self._max_delay_s = max_reconnect_delay_s
        self._heartbeat_s = heartbeat_s
        self._request_timeout_s = request_timeout_s
        self._rotate_after_s = rotate_after_s
        self._current: _Connection | None = None
        self._subscriptions = 0
        self._malformed_logged = False
        self._stopping = False

    @property
    def up(self) -> bool:
        return self._current is not None and not self._current.reason

    async def run(self) -> None:
        """Keep the subscription up until cancelled."""
        delay = self._delay_s
        try:
            while True:
                try:
                    connection = await self._open()
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    await self._failed(error)
                    delay = await self._back_off(delay)
                    continue
                await self._switch_to(connection)
                opened = time.monotonic()
                await connection.ending.wait()
                logger.info("Binance user data stream: %s", connection.reason)
                if connection.reason in ("serverShutdown", "rotate"):
                    # This connection keeps reading until the next one is subscribed.
                    continue
                if connection.reason == "terminated":
                    await connection.close()
                if time.monotonic() - opened > self._max_delay_s:
                    delay = self._delay_s  # it had settled: a drop now starts afresh
                delay = await self._back_off(delay)
        finally:
            self._stopping = True
            if self._current is not None:
                await self._current.close()
                self._current = None

    async def _back_off(self, delay: float) -> float:
        """Wait `delay` (with jitter, so many clients do not return at once); the next
        wait is twice as long, up to the cap."""
        await asyncio.sleep(delay * random.uniform(0.5, 1.0))
        return min(delay * 2, self._max_delay_s)

    # -- one connection ----------------------------------------------------------------

    async def _open(self) -> _Connection:
        ws = await self._session.ws_connect(
            self._url,
            heartbeat=self._heartbeat_s,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=self._request_timeout_s),
        )
        try:
            request_id = uuid.uuid4().hex
            await ws.send_str(
                json.dumps({"id": request_id, "method": SUBSCRIBE, "params": dict(self._sign())})
            )
            async with asyncio.timeout(self._request_timeout_s):
                while True:
                    message = await ws.receive()
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        raise ConnectionError(f"closed while subscribing ({message.type})")
                    data = self._decode(message.data)
                    if data is None:
                        continue
                    if data.get("id") == request_id:
                        self._subscribed(data)
                        break
                    self._dispatch(data)
        except BaseException:
            await ws.close()
            raise
        connection = _Connection(ws)
        connection.reader = asyncio.get_running_loop().create_task(
            self._read(connection), name="binance-user-stream"
        )
        return connection

    def _subscribed(self, answer: dict[str, Any]) -> None:
        if answer.get("status") == 200:
            return
        error = answer.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            raise StreamRefused(code if isinstance(code, int) else None, str(error.get("msg", "")))
        raise StreamRefused(None, f"status {answer.get('status')}")

    async def _read(self, connection: _Connection) -> None:
        loop = asyncio.get_running_loop()
        rotate = loop.call_later(self._rotate_after_s, connection.end, "rotate")
        try:
            async for message in connection.ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    data = self._decode(message.data)
                    if data is not None:
                        self._dispatch(data, connection)
                elif message.type is aiohttp.WSMsgType.BINARY:
                    self._malformed("a binary frame (SBE was not asked for)")
        finally:
            rotate.cancel()
            connection.end("closed")
            if self._current is connection:
                # The stream is down until the next connection is subscribed.
                self._current = None
                self._went_down(connection.reason)

    def _dispatch(self, data: dict[str, Any], connection: _Connection | None = None) -> None:
        event = data.get("event")
        if not isinstance(event, dict):
            return  # an answer to a request: only the subscription's is awaited
        kind = event.get("e")
        if kind == "serverShutdown":
            if connection is not None:
                connection.end("serverShutdown")
            return
        if kind == "eventStreamTerminated":
            if connection is not None:
                connection.end("terminated")
            return
        self._stats.stream_events += 1
        self._on_event(event)

    def _decode(self, text: str) -> dict[str, Any] | None:
        try:
            data = json.loads(text)
        except ValueError:
            self._malformed("a frame that is not JSON")
            return None
        if not isinstance(data, dict):
            self._malformed("a frame that is not a JSON object")
            return None
        return data

    def _malformed(self, what: str) -> None:
        self._stats.malformed += 1
        if not self._malformed_logged:
            self._malformed_logged = True
            logger.warning("Binance user data stream sent %s; counting such and carrying on", what)

    # -- up and down -----------------------------------------------------------------------

    async def _switch_to(self, connection: _Connection) -> None:
        """`connection` is subscribed: it becomes the current one. One it replaces (still
        reading, after serverShutdown or rotation) is closed only now, so no event fell
        between the two; if there was none, events may have been missed meanwhile."""
        previous, self._current = self._current, connection
        if previous is not None:
            await previous.close()
        if self._subscriptions:
            self._stats.reconnects += 1
        self._subscriptions += 1
        self._stats.user_stream_connected = True
        self._on_up(previous is None)

    def _went_down(self, reason: str) -> None:
        self._stats.user_stream_connected = False
        self._stats.last_error[ENDPOINT] = f"user data stream {reason}"
        if not self._stopping:
            self._on_down(reason)

    async def _failed(self, error: Exception) -> None:
        text = str(error) if isinstance(error, StreamRefused) else type(error).__name__
        if isinstance(error, aiohttp.WSServerHandshakeError):
            text = f"handshake refused: HTTP {error.status}"
        self._stats.last_error[ENDPOINT] = f"subscribing failed: {text}"
        logger.warning("Binance user data stream: subscribing failed: %s", text)
        if isinstance(error, StreamRefused) and error.code == INVALID_TIMESTAMP:
            # Our clock is off Binance's: learn it again before the next attempt.
            with contextlib.suppress(Exception):
                await self._resync()
