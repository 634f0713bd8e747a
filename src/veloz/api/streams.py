"""Stream routes: `GET /api/stream` (Server-Sent Events), `/ws/market` and `/ws/orders`
(WebSockets). They parse what a client asks for, attach it to the app's `StreamHub`
(`veloz.api.stream_hub`, which owns the fan-out) and copy its mailbox to the wire; they
end when the client leaves, falls behind, or the service shuts down.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, WebSocket, get, websocket
from litestar.background_tasks import BackgroundTask
from litestar.exceptions import WebSocketDisconnect
from litestar.params import QueryParameter
from litestar.response import Stream
from litestar.status_codes import WS_1001_GOING_AWAY, WS_1008_POLICY_VIOLATION
from litestar.types import ControllerRouterHandler

from veloz.api.deps import Client
from veloz.api.errors import error_responses
from veloz.api.stream_hub import (
    DEFAULT_FLUSH_INTERVAL_S,
    MARKET_CHANNELS,
    SSE_TYPES,
    Closed,
    Mailbox,
    MarketKey,
    SseClient,
    StreamHub,
)
from veloz.engine.client import EngineClient
from veloz.model.errors import CommandRejected, ErrorCode
from veloz.observability.memory import MemoryPool

BACKLOG_FRAMES_PER_CHUNK = 256
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_CLOSE_CODES = {Closed.SLOW: WS_1008_POLICY_VIOLATION, Closed.SHUTDOWN: WS_1001_GOING_AWAY}
_json_message = msgspec.json.Decoder()

RequestHandler = Callable[[Mapping[str, Any]], dict[str, Any]]


def hub_of(app: Litestar, client: EngineClient) -> StreamHub:
    """The app's hub, made on first use unless one was installed as `app.state.stream_hub`
    (tests and benches install their own to shorten the keep-alive or the mailboxes)."""
    hub: StreamHub | None = app.state.get("stream_hub")
    if hub is None:
        memory: MemoryPool | None = app.state.get("memory")
        hub = app.state.stream_hub = StreamHub(
            client,
            app.state.shutdown,
            flush_interval_s=app.state.get("stream_flush_s", DEFAULT_FLUSH_INTERVAL_S),
            max_queued_bytes=memory.share("streams") if memory is not None else None,
        )
    return hub


# -- SSE ---------------------------------------------------------------------------------


def parse_last_id(header: str | None, query: str | None) -> int | None:
    """The id to resume after: the `Last-Event-ID` header (which browsers send on their own
    when they reconnect) wins over `?last_id=`."""
    raw = header if header else query
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise CommandRejected(f"last_id must be a non-negative integer, got {raw!r}") from None
    if value < 0:
        raise CommandRejected(f"last_id must be a non-negative integer, got {raw!r}")
    return value


def parse_types(raw: str | None) -> frozenset[str] | None:
    """`?types=market,order_update`; None (every type) when absent."""
    if raw is None or raw.strip() == "":
        return None
    types = frozenset(t.strip() for t in raw.split(",") if t.strip())
    unknown = types - SSE_TYPES
    if unknown:
        raise CommandRejected(
            f"unknown stream type(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(SSE_TYPES))}"
        )
    return types


async def sse_body(hub: StreamHub, client: SseClient) -> AsyncIterator[bytes]:
    """The backlog, then live frames as they arrive, until the mailbox closes."""
    try:
        backlog, client.backlog = client.backlog, []
        for start in range(0, len(backlog), BACKLOG_FRAMES_PER_CHUNK):
            yield b"".join(backlog[start : start + BACKLOG_FRAMES_PER_CHUNK])
        while batch := await client.mailbox.take():
            yield b"".join(batch)
    finally:
        hub.close(client.mailbox)


async def _detach(hub: StreamHub, mailbox: Mailbox[bytes]) -> None:
    hub.close(mailbox)


@get(
    "/api/stream",
    media_type="text/event-stream",
    summary="Server-Sent Events: market, order and account events; resumable by id",
    tags=["streams"],
    # Without this the document shows Litestar's own 400 body, not the `{"error",
    # "message"}` a bad `types` or `last_id` really gets.
    responses=error_responses(),
)
async def event_stream(
    request: Request[Any, Any, Any],
    engine_client: Client,
    last_id: Annotated[
        str | None, QueryParameter(description="resume after this id (Last-Event-ID wins)")
    ] = None,
    types: Annotated[
        str | None, QueryParameter(description="comma-separated event types; default all")
    ] = None,
) -> Stream:
    resume_after = parse_last_id(request.headers.get("last-event-id"), last_id)
    wanted = parse_types(types)
    hub = hub_of(request.app, engine_client)
    client = hub.open_sse(wanted, resume_after)
    return Stream(
        sse_body(hub, client),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
        # Also runs when the client left before the body started (the generator's
        # `finally` only runs once it has started).
        background=BackgroundTask(_detach, hub, client.mailbox),
    )


# -- WebSockets --------------------------------------------------------------------------


def error_message(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": code, "message": message}


def decode_message(raw: str | bytes | None) -> dict[str, Any]:
    """A client message: one JSON object. Raises CommandRejected (`bad_json`) otherwise."""
    try:
        message = _json_message.decode(raw or b"")
    except msgspec.DecodeError as exc:
        raise CommandRejected(f"invalid JSON: {exc}", code=ErrorCode.BAD_JSON) from None
    if not isinstance(message, dict):
        raise CommandRejected("a message is one JSON object", code=ErrorCode.BAD_JSON)
    return message


def parse_market_request(
    message: Mapping[str, Any], symbols_traded: Collection[str]
) -> tuple[str, list[str], list[str]]:
    """(action, symbols, channels) of a `subscribe`/`unsubscribe`; symbols upper-cased."""
    action = message.get("action")
    if action not in ("subscribe", "unsubscribe"):
        raise CommandRejected(
            f"unknown action {action!r}; send subscribe, unsubscribe or {{'type': 'ping'}}"
        )
    symbols = list(dict.fromkeys(s.upper() for s in _strings(message, "symbols")))
    channels = _strings(message, "channels")
    unknown_channels = sorted(set(channels) - set(MARKET_CHANNELS))
    if unknown_channels:
        raise CommandRejected(
            f"unknown channel(s) {', '.join(unknown_channels)}; known: {', '.join(MARKET_CHANNELS)}"
        )
    unknown_symbols = sorted(set(symbols) - set(symbols_traded))
    if unknown_symbols:
        raise CommandRejected(
            f"unknown symbol(s) {', '.join(unknown_symbols)}; "
            f"trading {', '.join(sorted(symbols_traded))}",
            code=ErrorCode.UNKNOWN_SYMBOL,
        )
    return action, symbols, channels


def _strings(message: Mapping[str, Any], name: str) -> list[str]:
    value = message.get(name)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise CommandRejected(f"{name} must be a non-empty list of strings")
    return list(dict.fromkeys(value))  # in order, without repeats


class MarketSession:
    """One `/ws/market` connection's requests, applied to the hub."""

    def __init__(self, hub: StreamHub, mailbox: Mailbox[str], symbols: Collection[str]):
        self._hub = hub
        self._mailbox = mailbox
        self._symbols = symbols

    def handle(self, message: Mapping[str, Any]) -> dict[str, Any]:
        action, symbols, channels = parse_market_request(message, self._symbols)
        keys: list[MarketKey] = [(s, c) for s in symbols for c in channels]
        if action == "subscribe":
            self._hub.watch(self._mailbox, keys)
        else:
            self._hub.unwatch(self._mailbox, keys)
        return {"type": f"{action}d", "symbols": symbols, "channels": channels}


def orders_request(_: Mapping[str, Any]) -> dict[str, Any]:
    raise CommandRejected("this stream takes only {'type': 'ping'}")


async def serve_socket(
    socket: WebSocket[Any, Any, Any],
    hub: StreamHub,
    mailbox: Mailbox[str],
    handle: RequestHandler,
) -> None:
    """Answer the client's messages and send what its mailbox receives, until the client
    leaves or the hub closes the mailbox (slow client, shutdown)."""
    reader = asyncio.get_running_loop().create_task(_read(socket, hub, mailbox, handle))
    try:
        while batch := await mailbox.take():
            for text in batch:
                await socket.send_text(text)
    except (WebSocketDisconnect, OSError):  # uvicorn's ClientDisconnected is an OSError
        pass
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        hub.close(mailbox)
    code = _CLOSE_CODES.get(mailbox.closed) if mailbox.closed else None
    if code is not None and socket.connection_state != "disconnect":
        with contextlib.suppress(WebSocketDisconnect, OSError):
            await socket.close(code, f"stream closed: {mailbox.closed}")


async def _read(
    socket: WebSocket[Any, Any, Any],
    hub: StreamHub,
    mailbox: Mailbox[str],
    handle: RequestHandler,
) -> None:
    try:
        while True:
            event = await socket.receive()
            if event["type"] != "websocket.receive":
                break
            hub.reply(mailbox, _answer(event.get("text") or event.get("bytes"), handle))
    except WebSocketDisconnect:
        pass
    finally:  # whatever ends the reading ends the connection
        hub.close(mailbox)


def _answer(raw: str | bytes | None, handle: RequestHandler) -> dict[str, Any]:
    try:
        message = decode_message(raw)
        return {"type": "pong"} if message.get("type") == "ping" else handle(message)
    except CommandRejected as exc:
        return error_message(exc.code, exc.message)


async def _opened(socket: WebSocket[Any, Any, Any], engine_client: EngineClient) -> StreamHub:
    await socket.accept()
    return hub_of(socket.app, engine_client)


@websocket("/ws/market")
async def market_socket(socket: WebSocket[Any, Any, Any], engine_client: Client) -> None:
    """Trades, top of book and closed one-minute bars for the symbols subscribed."""
    symbols = frozenset(await engine_client.symbols())
    hub = await _opened(socket, engine_client)
    mailbox = hub.open_market()
    session = MarketSession(hub, mailbox, symbols)
    await serve_socket(socket, hub, mailbox, session.handle)


@websocket("/ws/orders")
async def orders_socket(socket: WebSocket[Any, Any, Any], engine_client: Client) -> None:
    """Every `order_update` and `fill` (per caller once authentication exists)."""
    hub = await _opened(socket, engine_client)
    await serve_socket(socket, hub, hub.open_orders(), orders_request)


stream_routes: list[ControllerRouterHandler] = [event_stream, market_socket, orders_socket]
