"""P8: Binance market data from a loopback WebSocket through `BinanceWsSource` (msgspec
decoding, normalisation into `QuoteTick`/`TradeTick`, depth diffs into the `OrderBook`)
into a strategy-like callback.

The sender is a child process (`--serve`): a minimal asyncio server that does the
WebSocket handshake itself and writes pre-framed combined-stream frames, so it can send
far faster than the receiver reads, and answers `GET /api/v3/depth` with the snapshot the
diffs continue. The message mix is fixed and seeded: 40 % `trade`, 40 % `bookTicker`, 20 %
`depthUpdate` (1 to 6 levels per side, contiguous U/u over a 1,000-level book).

Figures (receiver: this process, one event loop, one core):
- `msgs_per_s`: flood of `--messages` frames, the real source (`run()`, its connection,
  snapshot and book) into a callback that counts; frames / (last callback - first).
- `json_msgs_per_s`: the reference, the same frames on the same kind of socket read with
  aiohttp and only `json.loads`-decoded into the same kind of callback: the floor of
  doing anything at all.
- `inproc_msgs_per_s`, `inproc_json_msgs_per_s`: the same two without the socket (frames
  handed straight to the decoder from a list): what the pipeline itself costs.
- `p50_us`, `p99_us` (and `json_p50_us`, `json_p99_us`): paced at `--rate` msgs/s for
  `--seconds`, from the sender writing a trade frame (its trade id is the sender's
  `time.monotonic_ns()`, one clock for both processes) to the callback receiving it; the
  first half second is left out. The sender writes every millisecond the frames due, so a
  frame may wait behind up to ten others of its millisecond: that is part of the figure.

Targets: `msgs_per_s >= 200,000`, `p99_us <= 1,000` at 10,000 msgs/s.

Run: `.venv/bin/python -m bench.market_ws` (about 40 s).
"""

import argparse
import asyncio
import base64
import hashlib
import json
import random
import subprocess
import sys
import time
from decimal import Decimal
from typing import Any

import aiohttp

from bench.common import (
    LoopName,
    Target,
    add_loop_argument,
    emit,
    figure,
    median,
    percentile,
    quiet_logging,
    record,
    result_name,
    run,
)
from veloz.binance.endpoints import BinanceEndpoints
from veloz.binance.limits import RateLimiter
from veloz.binance.rest import BinanceRest
from veloz.market.binance_ws import BinanceWsSource
from veloz.model.market import QuoteTick, TradeTick

NAME = "market_ws"
SYMBOL = "BTCUSDT"
STREAM = SYMBOL.lower()
BOOK_LEVELS = 1000
FIRST_UPDATE_ID = 1_000_001
TARGETS = (Target("msgs_per_s", ">=", 200_000), Target("p99_us", "<=", 1000))
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# -- the messages ----------------------------------------------------------------------------


class Script:
    """A seeded stream of combined-stream frames with consistent ids."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.trade_id = 1
        self.book_update = 1
        self.depth_id = FIRST_UPDATE_ID - 1

    def next(self, trade_id: int | None = None) -> bytes:
        roll = self.rng.random()
        if roll < 0.4:
            return self.trade(trade_id)
        if roll < 0.8:
            return self.book_ticker()
        return self.depth()

    def trade(self, trade_id: int | None = None, qty: str | None = None) -> bytes:
        self.trade_id += 1
        tid = trade_id if trade_id is not None else self.trade_id
        price = 50_000 + self.rng.randrange(-500, 500) / 100
        q = qty or f"{self.rng.randrange(1, 50_000) / 100_000:.5f}"
        data = (
            f'{{"e":"trade","E":1700000000000,"s":"{SYMBOL}","t":{tid},"p":"{price:.2f}",'
            f'"q":"{q}","T":1700000000000,"m":{"true" if self.rng.random() < 0.5 else "false"},'
            f'"M":true}}'
        )
        return _wrap(f"{STREAM}@trade", data)

    def book_ticker(self) -> bytes:
        self.book_update += 1
        bid = 50_000 + self.rng.randrange(-500, 500) / 100
        data = (
            f'{{"u":{self.book_update},"s":"{SYMBOL}","b":"{bid:.2f}","B":"1.23400000",'
            f'"a":"{bid + 0.01:.2f}","A":"0.98700000"}}'
        )
        return _wrap(f"{STREAM}@bookTicker", data)

    def depth(self) -> bytes:
        first = self.depth_id + 1
        self.depth_id += self.rng.randrange(1, 4)
        bids = self._levels(49_990.0, -1)
        asks = self._levels(50_010.0, 1)
        data = (
            f'{{"e":"depthUpdate","E":1700000000000,"s":"{SYMBOL}","U":{first},'
            f'"u":{self.depth_id},"b":{bids},"a":{asks}}}'
        )
        return _wrap(f"{STREAM}@depth@100ms", data)

    def _levels(self, touch: float, direction: int) -> str:
        levels = []
        for _ in range(self.rng.randrange(1, 7)):
            price = touch + direction * self.rng.randrange(0, 200) / 100
            qty = (
                "0.00000000"
                if self.rng.random() < 0.3
                else f"{self.rng.randrange(1, 900) / 100:.8f}"
            )
            levels.append(f'["{price:.2f}","{qty}"]')
        return "[" + ",".join(levels) + "]"


def _wrap(stream: str, data: str) -> bytes:
    return f'{{"stream":"{stream}","data":{data}}}'.encode()


def snapshot_body() -> bytes:
    bids = [[f"{49_990 - i / 100:.2f}", "1.00000000"] for i in range(BOOK_LEVELS)]
    asks = [[f"{50_010 + i / 100:.2f}", "1.00000000"] for i in range(BOOK_LEVELS)]
    return json.dumps({"lastUpdateId": FIRST_UPDATE_ID - 1, "bids": bids, "asks": asks}).encode()


def flood_frames(count: int, seed: int) -> list[bytes]:
    """`count` frames, the last a trade of quantity 0 that marks the end."""
    script = Script(seed)
    frames = [script.next() for _ in range(count - 1)]
    frames.append(script.trade(qty="0"))
    return frames


def ws_frame(payload: bytes) -> bytes:
    """A server-to-client text frame (unmasked)."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65_536:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + payload


# -- the sender (child process) ------------------------------------------------------------


class Sender:
    def __init__(self, messages: int, rate: int, seconds: float) -> None:
        self.flood = b"".join(ws_frame(frame) for frame in flood_frames(messages, seed=8))
        self.rate = rate
        self.seconds = seconds
        self.snapshot = snapshot_body()
        self.snapshot_served = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            target = lines[0].split(" ")[1]
            headers = {
                k.strip().lower(): v.strip()
                for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)
            }
            if target.startswith("/api/v3/depth"):
                await self._depth(writer)
                return
            accept = base64.b64encode(
                hashlib.sha1(headers["sec-websocket-key"].encode() + _WS_GUID).digest()
            )
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            mode = target.split("/")[1]
            if mode == "flood":
                await self._flood(writer, wait_for_snapshot=True)
            elif mode == "floodjson":
                await self._flood(writer, wait_for_snapshot=False)
            else:
                await self._paced(writer, wait_for_snapshot=mode == "paced")
            await reader.read(2)  # the client's close frame: answer and hang up
            writer.write(b"\x88\x00")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _depth(self, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(self.snapshot)}\r\n\r\n".encode()
            + self.snapshot
        )
        await writer.drain()
        self.snapshot_served.set()

    async def _flood(self, writer: asyncio.StreamWriter, *, wait_for_snapshot: bool) -> None:
        if wait_for_snapshot:
            # The book must be synced before the diffs pile up beyond its buffer.
            await asyncio.wait_for(self.snapshot_served.wait(), 10)
            self.snapshot_served.clear()
        chunk = 1 << 20
        for start in range(0, len(self.flood), chunk):
            writer.write(self.flood[start : start + chunk])
            await writer.drain()

    async def _paced(self, writer: asyncio.StreamWriter, *, wait_for_snapshot: bool) -> None:
        if wait_for_snapshot:
            await asyncio.wait_for(self.snapshot_served.wait(), 10)
            self.snapshot_served.clear()
        script = Script(seed=9)
        started = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - started) < self.seconds:
            due = int(elapsed * self.rate)
            while sent < due:
                writer.write(ws_frame(script.next(trade_id=time.monotonic_ns())))
                sent += 1
            await writer.drain()
            await asyncio.sleep(0.001)
        writer.write(ws_frame(script.trade(trade_id=time.monotonic_ns(), qty="0")))
        await writer.drain()


async def serve(messages: int, rate: int, seconds: float) -> None:
    sender = Sender(messages, rate, seconds)
    server = await asyncio.start_server(sender.handle, "127.0.0.1", 0, backlog=16)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


# -- the receivers ----------------------------------------------------------------------------


def endpoints(port: int, mode: str) -> BinanceEndpoints:
    base = f"http://127.0.0.1:{port}"
    return BinanceEndpoints(
        rest=base, streams=f"ws://127.0.0.1:{port}/{mode}/ws", trade_rest=base, ws_api=base
    )


class Probe:
    """The strategy-like callback: counts, and keeps a latency sample per trade."""

    def __init__(self, latency: bool) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.latency = latency
        self.samples: list[int] = []
        self.done = asyncio.Event()

    def end(self) -> None:
        self.last = time.perf_counter()
        self.done.set()


async def receive_ours(port: int, mode: str, latency: bool) -> tuple[Probe, BinanceWsSource]:
    probe = Probe(latency)
    clock = time.monotonic_ns
    samples = probe.samples

    def on_item(item: Any) -> None:
        if probe.count == 0:
            probe.first = time.perf_counter()
        probe.count += 1
        if type(item) is TradeTick:
            if latency:
                samples.append(clock() - int(item.trade_id))
            if not item.size:
                probe.end()
        elif type(item) is not QuoteTick:
            raise AssertionError(item)

    rest = BinanceRest(f"http://127.0.0.1:{port}", limiter=RateLimiter())
    source = BinanceWsSource(endpoints(port, mode), [SYMBOL], rest, stale_after_s=60.0)
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(on_item, stop))
    await asyncio.wait_for(probe.done.wait(), 120)
    stop.set()
    await task
    await rest.close()
    return probe, source


async def receive_json(port: int, mode: str, latency: bool) -> Probe:
    probe = Probe(latency)
    clock = time.monotonic_ns
    samples = probe.samples
    loads = json.loads

    def on_message(message: dict[str, Any]) -> None:
        if probe.count == 0:
            probe.first = time.perf_counter()
        probe.count += 1
        if message["stream"].endswith("@trade"):
            data = message["data"]
            if latency:
                samples.append(clock() - data["t"])
            if data["q"] == "0":
                probe.end()

    url = endpoints(port, mode).combined_streams_url([f"{STREAM}@trade"])
    async with aiohttp.ClientSession() as session, session.ws_connect(url, decode_text=False) as ws:
        while not probe.done.is_set():
            message = await ws.receive()
            if message.type is not aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"unexpected {message.type}")
            on_message(loads(message.data))
    return probe


def inproc_ours(frames: list[bytes]) -> float:
    """Frames handed straight to the source's frame handler (its book synced first)."""
    count = 0

    def on_item(item: Any) -> None:
        nonlocal count
        count += 1

    unused = BinanceRest("http://127.0.0.1:1", limiter=RateLimiter())  # nothing is fetched
    source = BinanceWsSource(endpoints(1, "x"), [SYMBOL], unused, stale_after_s=60.0)
    source._publish = on_item
    source._routes = source._make_routes()
    snapshot = json.loads(snapshot_body())
    book = source.book(SYMBOL)
    book.apply_snapshot(
        snapshot["lastUpdateId"],
        [(Decimal(p), Decimal(q)) for p, q in snapshot["bids"]],
        [(Decimal(p), Decimal(q)) for p, q in snapshot["asks"]],
    )
    on_frame = source._on_frame
    started = time.perf_counter()
    for frame in frames:
        on_frame(frame)
    elapsed = time.perf_counter() - started
    assert book.synced and source.stats.malformed == 0, "the book fell out of sync"
    return len(frames) / elapsed


def inproc_json(frames: list[bytes]) -> float:
    count = 0
    loads = json.loads

    def on_message(message: dict[str, Any]) -> None:
        nonlocal count
        count += 1

    started = time.perf_counter()
    for frame in frames:
        on_message(loads(frame))
    return len(frames) / (time.perf_counter() - started)


# -- the bench ---------------------------------------------------------------------------------


def _spawn_sender(messages: int, rate: int, seconds: float) -> tuple[subprocess.Popen[str], int]:
    command = [
        sys.executable, "-m", "bench.market_ws", "--serve",
        "--messages", str(messages), "--rate", str(rate), "--seconds", str(seconds),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return process, port


async def measure(args: argparse.Namespace, port: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    rates: dict[str, list[float]] = {"msgs_per_s": [], "json_msgs_per_s": []}
    for _ in range(args.runs):
        probe, source = await receive_ours(port, "flood", latency=False)
        book = source.book(SYMBOL)
        if not book.synced or source.stats.messages != args.messages:
            raise RuntimeError(f"ours: book synced={book.synced}, {source.stats.messages} frames")
        rates["msgs_per_s"].append(args.messages / (probe.last - probe.first))
        reference = await receive_json(port, "floodjson", latency=False)
        rates["json_msgs_per_s"].append(reference.count / (reference.last - reference.first))
    for name, runs in rates.items():
        figures[name] = figure(median(runs), "msgs/s", runs, messages=args.messages)
        emit(NAME, name, median(runs), "msgs/s")
    figures["ratio_to_json"] = figure(
        figures["msgs_per_s"]["value"] / figures["json_msgs_per_s"]["value"], "ratio"
    )

    frames = flood_frames(min(args.messages, 200_000), seed=8)
    inproc: dict[str, list[float]] = {"inproc_msgs_per_s": [], "inproc_json_msgs_per_s": []}
    for _ in range(args.runs):
        inproc["inproc_msgs_per_s"].append(inproc_ours(frames))
        inproc["inproc_json_msgs_per_s"].append(inproc_json(frames))
    for name, runs in inproc.items():
        figures[name] = figure(median(runs), "msgs/s", runs, messages=len(frames))
        emit(NAME, name, median(runs), "msgs/s")

    for label, mode, receive in (
        ("", "paced", receive_ours),
        ("json_", "pacedjson", receive_json),
    ):
        result = await receive(port, mode, latency=True)
        probe = result[0] if isinstance(result, tuple) else result
        warm = int(args.rate * 0.4 * 0.5)  # trades are 40 % of the frames
        samples = sorted(probe.samples[warm:-1])
        p50, p99 = percentile(samples, 0.5) / 1000, percentile(samples, 0.99) / 1000
        extra = {"samples": len(samples), "rate": args.rate, "max_us": samples[-1] / 1000}
        figures[f"{label}p50_us"] = figure(p50, "us", **extra)
        figures[f"{label}p99_us"] = figure(p99, "us", **extra)
        emit(NAME, f"{label}p50_us", p50, "us")
        emit(NAME, f"{label}p99_us", p99, "us", max_us=extra["max_us"])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    add_loop_argument(parser)
    args = parser.parse_args()
    loop: LoopName = args.loop
    if args.serve:
        run(lambda: serve(args.messages, args.rate, args.seconds), loop)
        return
    quiet_logging()
    started = time.monotonic()
    sender, port = _spawn_sender(args.messages, args.rate, args.seconds)
    try:
        figures = run(lambda: measure(args, port), loop)
    finally:
        sender.terminate()
        sender.wait()
    notes = (
        "Receiver: this process, one event loop; sender: a child process writing pre-framed "
        "frames. Mix 40 % trade, 40 % bookTicker, 20 % depthUpdate (1-6 levels a side) over a "
        f"{BOOK_LEVELS}-level book. msgs_per_s: the real BinanceWsSource (aiohttp client, msgspec, "
        "OrderBook) into a counting callback; json_msgs_per_s: aiohttp + json.loads only. "
        "inproc_*: the same without the socket. Latency: sender write (monotonic ns in the "
        "trade id) to "
        f"callback, paced at {args.rate}/s for {args.seconds} s, written once a millisecond. "
        f"Medians of {args.runs} runs. Bench took {time.monotonic() - started:.0f} s."
    )
    path = record(result_name(NAME, loop), figures, notes, targets=TARGETS, loop=loop)
    print(f"recorded {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
