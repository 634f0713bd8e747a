"""Stdio mode: commands in on stdin, one per line, NDJSON events out on stdout.

    ORDER <BUY|SELL> <symbol> <qty> <price> [client_order_id]
    CANCEL <client_order_id>
    QUERY <client_order_id>
    STATUS
    {"cmd": "order"|"cancel"|"query"|"status", ...}

Commands run concurrently (so their journal writes share fsyncs); every event carries the
client order id it concerns. An order is acknowledged by its first `order_update`, which
is published only once the order is durable. A malformed line yields one `error` event and
the engine carries on. EOF or SIGINT/SIGTERM drains and exits 0. Logs go to stderr only.
"""

import asyncio
import logging
import signal
import sys
from typing import Any, BinaryIO

import msgspec

from veloz.clock import Clock
from veloz.codec import encode_json, to_builtins
from veloz.engine.bus import BusMessage
from veloz.engine.client import EngineClient
from veloz.engine.views.orders import OrderView
from veloz.engine.views.streams import stream_events
from veloz.model.commands import parse_cancel_order, parse_submit_order
from veloz.model.errors import CommandRejected, ErrorCode, VelozError
from veloz.persistence.service import HistoryService, running_history
from veloz.runtime.client import LocalEngineClient
from veloz.runtime.live import LiveEngine
from veloz.runtime.redis_events import running_redis

logger = logging.getLogger(__name__)

MAX_LINE_BYTES = 64 * 1024
_json_line = msgspec.json.Decoder(dict[str, Any])


class NdjsonOut:
    """Buffers events and writes them once per loop iteration, one JSON object a line."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lines: list[bytes] = []
        self._scheduled = False

    def emit(self, event: dict[str, Any]) -> None:
        self._lines.append(encode_json(event) + b"\n")
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if self._lines:
            data, self._lines = b"".join(self._lines), []
            self._stream.write(data)
            self._stream.flush()


class StdioSession:
    """One stdin/stdout conversation with the engine, through its client; `clock` stamps
    the events the session writes itself."""

    def __init__(self, client: EngineClient, out: NdjsonOut, clock: Clock) -> None:
        self._client = client
        self._out = out
        self._clock = clock

    def on_bus(self, message: BusMessage) -> None:
        for event in stream_events(message):
            self._out.emit(event)

    async def handle(self, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").strip()
        if not line:
            return
        try:
            await self._dispatch(line)
        except VelozError as exc:
            self.error(exc.code, exc.message, line, exc.reason)
        except Exception:
            logger.exception("stdio command failed: %s", line[:200])
            self.error(ErrorCode.INTERNAL_ERROR, "the command failed; see the engine log", line)

    async def _dispatch(self, line: str) -> None:
        fields = _parse_line(line)
        command = fields.get("cmd")
        if command == "order":
            placed = await self._client.submit_order(parse_submit_order(fields))
            if not placed.created:  # a new order is announced by the bus once durable
                self._order_state(placed.order, "order_update")
        elif command == "cancel":
            await self._client.cancel_order(parse_cancel_order(fields))
        elif command == "query":
            order = await self._client.order(_required(fields, "client_order_id"))
            self._order_state(order, "order_state")
        elif command == "status":
            status = await self._client.account_status()
            self._out.emit({"type": "account"} | to_builtins(status))
        else:
            raise CommandRejected(
                f"unknown command {str(command)[:20]!r}; expected ORDER, CANCEL, QUERY or STATUS",
                code=ErrorCode.BAD_COMMAND,
            )

    def _order_state(self, order: OrderView, event_type: str) -> None:
        self._out.emit(
            {"type": event_type, "ts_ns": self._clock.time_ns()} | msgspec.structs.asdict(order)
        )

    def error(self, code: ErrorCode, message: str, line: str, reason: str | None = None) -> None:
        event: dict[str, Any] = {
            "type": "error",
            "ts_ns": self._clock.time_ns(),
            "code": code,
            "message": message,
            "line": line[:200],
        }
        if reason is not None:
            event["reason"] = reason
        self._out.emit(event)


def _parse_line(line: str) -> dict[str, Any]:
    if line.startswith("{"):
        try:
            fields = _json_line.decode(line)
        except msgspec.DecodeError as exc:
            raise CommandRejected(f"invalid JSON: {exc}", code=ErrorCode.BAD_JSON) from None
        if isinstance(fields.get("cmd"), str):
            fields["cmd"] = fields["cmd"].lower()
        return fields
    words = line.split()
    verb = words[0].upper()
    args = words[1:]
    expected = {"ORDER": (4, 5), "CANCEL": (1, 1), "QUERY": (1, 1), "STATUS": (0, 0)}
    if verb not in expected:
        raise CommandRejected(
            f"unknown command {verb[:20]!r}; expected ORDER, CANCEL, QUERY or STATUS",
            code=ErrorCode.BAD_COMMAND,
        )
    low, high = expected[verb]
    if not low <= len(args) <= high:
        raise CommandRejected(f"{verb} takes {low}..{high} arguments, got {len(args)}")
    if verb == "ORDER":
        keys = ("side", "symbol", "qty", "price", "client_order_id")
        return {"cmd": "order"} | dict(zip(keys, args, strict=False))
    if verb in ("CANCEL", "QUERY"):
        return {"cmd": verb.lower(), "client_order_id": args[0]}
    return {"cmd": "status"}


def _required(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value:
        raise CommandRejected(f"{name} is required")
    return value


async def run_stdio(
    engine: LiveEngine,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    history: HistoryService | None = None,
) -> int:
    async with running_history(history), running_redis(engine.redis):
        return await _serve_stdio(engine, stdin, stdout)


async def _serve_stdio(engine: LiveEngine, stdin: BinaryIO | None, stdout: BinaryIO | None) -> int:
    out = NdjsonOut(stdout or sys.stdout.buffer)
    client = LocalEngineClient(engine)
    session = StdioSession(client, out, engine.clock)
    client.subscribe(session.on_bus)
    await engine.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    reader = asyncio.StreamReader(limit=MAX_LINE_BYTES)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), stdin or sys.stdin.buffer
    )
    running: set[asyncio.Task[None]] = set()
    try:
        await _read_commands(reader, session, running, stop)
        if running:
            await asyncio.wait(running)
    finally:
        await engine.stop()
        out.flush()
    return 0


async def _read_commands(
    reader: asyncio.StreamReader,
    session: StdioSession,
    running: set[asyncio.Task[None]],
    stop: asyncio.Event,
) -> None:
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while True:
            reading = asyncio.ensure_future(reader.readline())
            done, _ = await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if reading not in done:
                reading.cancel()
                return
            try:
                line = reading.result()
            except ValueError:  # longer than MAX_LINE_BYTES: the reader dropped it
                session.error(
                    ErrorCode.LINE_TOO_LONG, f"lines are limited to {MAX_LINE_BYTES} bytes", ""
                )
                continue
            if not line:
                return
            task = asyncio.get_running_loop().create_task(session.handle(line))
            running.add(task)
            task.add_done_callback(running.discard)
    finally:
        stopping.cancel()
