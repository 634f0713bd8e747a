"""P6: streaming fan-out, 1,000 SSE clients at 200 events/s on loopback.

What is measured: `GET /api/stream` of the real app (`create_app`, uvicorn with its default
HTTP protocol, uvloop), served from the engine's own event loop as `veloz engine --port`
does, to `--clients` SSE clients in a separate process. The events are real: the bench
submits resting GTC LIMIT BUYs through `EngineClient.submit_order` on a fixed schedule (open
loop, `--rate` / 2 orders/s), and each order journals two entries (`OrderNew`,
`OrderAccepted`, with `VELOZ_WAL_SYNC=true`'s synchronous journal) that reach the bus once
durable and go out as two `order_update` events. So every event takes the path a real one
takes (durable, then bus, then the stream hub, then every client) and nothing is
synthesised at the stream layer; no market timer runs, so order events are all there is.

- lag: receive time in the client process minus the time the event was published on the
  engine bus (both `time.time_ns()`, same machine), over the events published after
  `--warmup` seconds; p50/p99/max over every (client, event) pair. `lag_from_event` is the
  same from the event's own `ts_ns` (when the engine created it, before the journal):
  end to end, journal group commit included.
- loss: for each client that was not cut off for being slow, the events published while
  it was connected that it never received (every client connects before the first one).
- cut off: clients whose stream the server ended before shutdown (mailbox full).
- server_cpu_per_s: CPU seconds the engine process used per second of publishing (1.0 is
  a saturated core: the fan-out then batches by itself, and lag grows with the backlog).

The clients are raw asyncio protocols on uvloop (HTTP/1.1, chunked body parsed, ids
pulled out with one regex), so the client side costs as little as it can; it still runs
on one core, and its own delays count as lag. With `--pin` (default where there are at
least 2 CPUs) the server process is pinned to CPU 0 and the clients to CPU 1.

Run: `.venv/bin/python -m bench.sse_fanout` (about 60 s; `--help` for options).
"""

import argparse
import asyncio
import contextlib
import functools
import json
import os
import resource
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import uvicorn

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
from bench.sse_client import SseReader, stream_request
from veloz.api.app import create_app
from veloz.api.stream_hub import DEFAULT_FLUSH_INTERVAL_S, StreamHub
from veloz.engine.bus import BusMessage, Journaled
from veloz.execution.venues.sim import SimVenueConfig
from veloz.journal.writer import JournalConfig
from veloz.market.sim import SimMarketConfig
from veloz.model.commands import SubmitOrder
from veloz.model.enums import OrderSide
from veloz.model.market import QuoteTick
from veloz.runtime.client import LocalEngineClient
from veloz.runtime.live import EngineConfig, LiveEngine

NAME = "sse_fanout"
SYMBOL = "BTCUSDT"
TARGETS = (Target("p99_lag_ms", "<=", 100), Target("lost_events", "<=", 0))
REQUEST = stream_request("/api/stream")


@dataclass(frozen=True, slots=True)
class Options:
    clients: int
    rate: float  # events/s (two per order)
    seconds: float
    warmup: float
    grace: float
    runs: int
    pin: bool
    flush_s: float
    directory: Path


# -- the server side -------------------------------------------------------------------------


def engine_config(directory: Path) -> EngineConfig:
    return EngineConfig(
        journal=JournalConfig(directory=str(directory), sync=True),
        market=SimMarketConfig(symbols=(SYMBOL,), seed=7),
        venue=SimVenueConfig(latency_ms=0, starting_balances={"USDT": Decimal(10**12)}),
        run_market=False,
    )


class PublishLog:
    """When each journaled event reached the bus, and when the engine created it. It
    subscribes before the stream hub, so its timestamp is taken before the fan-out."""

    def __init__(self) -> None:
        self.times: dict[int, tuple[int, int]] = {}

    def on_bus(self, message: BusMessage) -> None:
        if isinstance(message, Journaled):
            self.times[message.seq] = (time.time_ns(), message.event.ts_ns)


@dataclass(frozen=True, slots=True)
class Served:
    engine: LiveEngine
    hub: StreamHub
    port: int
    published: PublishLog
    shutdown: asyncio.Event
    times_file: Path  # where the publish times go for the client process


@contextlib.asynccontextmanager
async def serving(options: Options) -> AsyncIterator[Served]:
    """The engine with the app served on a free loopback port, started in the order
    `run_service` starts them (app and server first, so the engine's start-up `gc.freeze()`
    covers them as it does in service)."""
    directory = Path(tempfile.mkdtemp(prefix="veloz-sse-", dir=options.directory))
    engine = LiveEngine(engine_config(directory / "journal"))
    client, shutdown = LocalEngineClient(engine), asyncio.Event()
    app = create_app(client, shutdown=shutdown)
    hub = app.state.stream_hub = StreamHub(client, shutdown, flush_interval_s=options.flush_s)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[listener]))
    try:
        await engine.start()
        engine.market.on_data(the_quote())
        published = PublishLog()
        engine.bus.subscribe(published.on_bus)
        port = listener.getsockname()[1]
        yield Served(engine, hub, port, published, shutdown, directory / "published.json")
    finally:
        shutdown.set()
        server.should_exit = True
        await task
        listener.close()
        await engine.stop()
        shutil.rmtree(directory, ignore_errors=True)


def the_quote() -> QuoteTick:
    size = Decimal(5)
    return QuoteTick(
        symbol=SYMBOL, bid=Decimal(50000), ask=Decimal(50001), bid_size=size, ask_size=size, ts_ns=1
    )


async def publish(client: LocalEngineClient, options: Options) -> int:
    """Submit resting orders on a fixed schedule for warm-up + measured seconds (open loop:
    an order is sent on time whether or not earlier ones were acknowledged). Returns the
    wall time (ns) the measured part began."""
    command = SubmitOrder(
        symbol=SYMBOL, side=OrderSide.BUY, qty=Decimal("0.001"), price=Decimal("47500.00")
    )
    orders_per_s = options.rate / 2
    total = int(orders_per_s * (options.warmup + options.seconds))
    loop = asyncio.get_running_loop()
    start = loop.time()
    measured_from_ns = time.time_ns() + int(options.warmup * 1e9)
    pending: set[asyncio.Task[Any]] = set()
    for number in range(total):
        await asyncio.sleep(max(0.0, start + number / orders_per_s - loop.time()))
        task = loop.create_task(client.submit_order(command))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    return measured_from_ns


async def one_run(options: Options, loop_name: LoopName, number: int) -> dict[str, float]:
    async with serving(options) as served:
        clients = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "bench.sse_fanout", "--client-port", str(served.port)],
            *["--clients", str(options.clients), "--times-file", str(served.times_file)],
            *["--loop", loop_name, "--pin" if options.pin else "--no-pin"],
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            await wait_for_clients(served.hub, clients, options.clients)
            cpu_before = cpu_seconds()
            measured_from_ns = await publish(LocalEngineClient(served.engine), options)
            server_cpu = (cpu_seconds() - cpu_before) / (options.warmup + options.seconds)
            await asyncio.sleep(options.grace)  # the last events reach the clients
            write_times(served.times_file, served.published, measured_from_ns)
        except BaseException:
            clients.kill()
            raise
        finally:
            served.shutdown.set()  # every stream ends: the client process reports and exits
        out, _ = await clients.communicate()
        result: dict[str, float] = json.loads(out)
        result |= {"server_cpu_per_s": server_cpu, "hub_slow_dropped": served.hub.slow_dropped}
    for key in ("p50_lag_ms", "p99_lag_ms", "max_lag_ms", "p99_lag_from_event_ms"):
        emit(NAME, key, result[key], "ms", run=number)
    emit(NAME, "lost_events", result["lost_events"], "events", run=number)
    emit(NAME, "clients_cut_off", result["clients_cut_off"], "clients", run=number)
    return result


async def wait_for_clients(hub: StreamHub, process: asyncio.subprocess.Process, n: int) -> None:
    deadline = time.monotonic() + 60
    while hub.sse_clients < n:
        if process.returncode is not None or time.monotonic() > deadline:
            raise RuntimeError(f"only {hub.sse_clients} of {n} SSE clients connected")
        await asyncio.sleep(0.01)


def write_times(path: Path, published: PublishLog, measured_from_ns: int) -> None:
    document = {
        "measured_from_ns": measured_from_ns,
        "shutdown_ns": time.time_ns(),
        "published": [[seq, at, created] for seq, (at, created) in published.times.items()],
    }
    path.write_text(json.dumps(document))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- the client side -------------------------------------------------------------------------


async def run_clients(port: int, count: int, times_file: Path) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    readers: list[SseReader] = []
    for start in range(0, count, 100):  # connect in batches: the listen backlog is finite
        batch = min(100, count - start)
        connected = await asyncio.gather(
            *(
                loop.create_connection(functools.partial(SseReader, REQUEST), "127.0.0.1", port)
                for _ in range(batch)
            )
        )
        readers += [reader for _, reader in connected]
    cpu_before = cpu_seconds()
    await asyncio.gather(*(r.ended for r in readers))
    client_cpu = cpu_seconds() - cpu_before
    return summarise_clients(readers, read_times(times_file)) | {"client_cpu_s": client_cpu}


def read_times(path: Path) -> dict[str, Any]:
    times: dict[str, Any] = json.loads(path.read_text())
    return times


def summarise_clients(readers: list[SseReader], times: dict[str, Any]) -> dict[str, float]:
    published = {seq: (at, created) for seq, at, created in times["published"]}
    measured_from, shutdown_ns = times["measured_from_ns"], times["shutdown_ns"]
    lags: list[int] = []
    lags_from_event: list[int] = []
    lost = duplicates = cut_off = 0
    for reader in readers:
        if reader.ended_ns < shutdown_ns:
            cut_off += 1
        else:
            lost += len(published.keys() - set(reader.ids))
        duplicates += len(reader.ids) - len(set(reader.ids))
        for seq, received in zip(reader.ids, reader.received_ns, strict=True):
            at, created = published[seq]
            if at >= measured_from:
                lags.append(received - at)
                lags_from_event.append(received - created)
    lags.sort()
    lags_from_event.sort()
    return {
        "clients_connected": sum(r.ok for r in readers),
        "clients_cut_off": cut_off,
        "lost_events": lost,
        "duplicate_events": duplicates,
        "events_published": len(published),
        "deliveries_measured": len(lags),
        "p50_lag_ms": percentile(lags, 0.50) / 1e6,
        "p99_lag_ms": percentile(lags, 0.99) / 1e6,
        "max_lag_ms": percentile(lags, 1.0) / 1e6,
        "p99_lag_from_event_ms": percentile(lags_from_event, 0.99) / 1e6,
    }


def client_main(args: argparse.Namespace) -> None:
    if args.pin:
        os.sched_setaffinity(0, {1})
    result = run(lambda: run_clients(args.client_port, args.clients, args.times_file), args.loop)
    print(json.dumps(result), flush=True)


# -- the bench ---------------------------------------------------------------------------------


UNITS = {"lag": "ms", "lost": "events", "duplicate": "events", "clients": "clients"}


def unit_of(key: str) -> str:
    if key.endswith("_ms"):
        return "ms"
    if "cpu" in key:
        return "cpu-s/s" if key.endswith("per_s") else "cpu-s"
    return next((unit for word, unit in UNITS.items() if word in key), "count")


async def bench(options: Options, loop_name: LoopName) -> list[dict[str, float]]:
    return [await one_run(options, loop_name, n) for n in range(1, options.runs + 1)]


def summarise(rounds: list[dict[str, float]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for key in rounds[0]:
        runs = [r[key] for r in rounds]
        summary[key] = figure(median(runs), unit_of(key), runs)
        emit(NAME, f"median_{key}", summary[key]["value"], unit_of(key), runs=len(runs))
    return summary


def notes_for(options: Options) -> str:
    return (
        f"{options.clients} SSE clients (raw asyncio protocols, one process"
        f"{', pinned to CPU 1' if options.pin else ''}) on loopback to the app served by "
        f"uvicorn in the engine's loop{' (pinned to CPU 0)' if options.pin else ''}. "
        f"{options.rate:g} events/s for {options.warmup:g} s warm-up + {options.seconds:g} s "
        "measured: resting LIMIT BUYs submitted through EngineClient on a fixed schedule, "
        "two journaled order_update events each (synchronous journal). Lag: client receive "
        "time minus bus publish time (same clock), every (client, event) pair of the "
        "measured part; lag_from_event from the event's ts_ns (journal included). Lost: "
        "events a client that was not cut off never received. Stream hub flush interval "
        f"{options.flush_s * 1000:g} ms. This machine is shared: other work on either core "
        "shows up as lag. Median of the runs."
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_loop_argument(parser)
    parser.add_argument("--clients", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=200, help="events/s (2 per order)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured part")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--grace", type=float, default=1.0, help="wait before ending streams")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument(
        "--flush-ms",
        type=float,
        default=DEFAULT_FLUSH_INTERVAL_S * 1000,
        help="the stream hub's flush interval (default: the hub's own)",
    )
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temp journals")
    parser.add_argument("--client-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--times-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pin is None:
        args.pin = (os.cpu_count() or 1) >= 2
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.client_port is not None:
        client_main(args)
        return
    loop_name: LoopName = args.loop
    quiet_logging()
    options = Options(
        clients=args.clients,
        rate=args.rate,
        seconds=args.seconds,
        warmup=args.warmup,
        grace=args.grace,
        runs=args.runs,
        pin=args.pin,
        flush_s=args.flush_ms / 1000,
        directory=(args.dir or Path(tempfile.gettempdir())).resolve(),
    )
    if options.pin:
        os.sched_setaffinity(0, {0})
    started = time.perf_counter()
    rounds = run(lambda: bench(options, loop_name), loop_name)
    path = record(
        result_name(NAME, loop_name),
        summarise(rounds),
        notes_for(options),
        targets=TARGETS,
        loop=loop_name,
        extra={"wall_seconds": round(time.perf_counter() - started, 1)},
    )
    emit(NAME, "recorded", 0, "", path=str(path))


if __name__ == "__main__":
    main()
