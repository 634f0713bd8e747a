"""P6 at scale: 1,000 SSE clients over 3 `veloz gateway` replicas at 200 events/s, and
the event rate one gateway sustains to 1,000 clients.

Everything runs as real processes on loopback, as deployed: a private `redis-server`
(free port, no persistence), `veloz engine --port` publishing every durable journal entry
to it (`VELOZ_REDIS_URL`, synchronous journal, the history projector as its child), and
`--gateways` `veloz gateway --port` replicas following the stream. The SSE clients run in
`--client-procs` processes of their own (raw asyncio protocols on uvloop, HTTP/1.1,
chunked body parsed, ids pulled out with one regex, as `bench.sse_fanout` but with a
cheaper regex), each asking `GET /api/stream?types=order_update` of a gateway (spread
round-robin), all connected before the load starts.

The events are real: this process places resting GTC LIMIT BUYs (price 30,000, the sim
market near 50,000) with `POST /api/order` straight to the engine (not through the
gateways: the command path stays out of the fan-out figure), open loop on a fixed
schedule at rate / 2 orders/s over a few keep-alive connections. Each order journals two
entries (`OrderNew` and `OrderAccepted`), published to Redis once durable, and each
gateway turns them into two `order_update` events for its clients.

- lag: receive time in the client process (`time.time_ns()`, when the chunk holding the
  event was read) minus the event's own `ts_ns` (the engine's clock when it created the
  event, before the journal write: so the lag includes the journal's group commit, the
  Redis publish, the gateway's read and fan-out, and is a little more than "from the
  journal write"). Over every (client, event) pair of the events created after
  `--warmup` s; p50/p99 from a histogram of 10 us bins (upper edge), max exact.
- loss: for each client not cut off, the `order_update` entries of the Redis stream
  (read with XRANGE after the load: the expected set, not what the clients saw) that it
  never received. Every client is connected before the first order. Late is not lost:
  the clients wait (at most `--drain` s) for the last event before they stop; what is
  still missing then counts as lost.
- cut off: streams the gateway ended before the bench closed them (a slow client).
- cpu_per_s: CPU seconds per second of load, from /proc/<pid>/stat before and after,
  for every process: engine, projector, each gateway, redis, the client processes and
  this driver. 1.0 is a saturated core; the machine has `nproc` of them, shared by all.
  `cpu_per_s_machine` is every core's non-idle time (/proc/stat) and
  `cpu_per_s_other_processes` what the rest of the machine took meanwhile (other work).
- to_gateway: the gateways' own `veloz_gateway_delivery_seconds` over the load (event
  time to its arrival at a gateway from Redis): mean, and p99 as a bucket's upper bound.
  What is left of the lag is the gateway's fan-out and the client.
- events_per_client_read: events per socket read in the clients (how much the gateway
  batches its writes).

Phase A (the target): `--clients` over `--gateways` gateways at `--rate` events/s,
`--runs` times on one cluster, median reported. Phase B: all `--clients` on ONE gateway
(a fresh cluster with one replica), the rate raised through `--steps`; "sustained" is the
highest step with p99 <= 100 ms and none lost. The order placement itself can be the
limit at high rates: each step reports the rate achieved.

The gateways gather events for their default VELOZ_STREAM_FLUSH_MS (25 ms) before writing
them to each client. `--gateway-flush-ms N` sets another interval (0: a write per batch of
entries from Redis) through that setting; such runs are printed, not recorded.

Run: `.venv/bin/python -m bench.gateway_fanout` (about 4 minutes; `--quick` for a smoke
run of 100 clients and 5 s; `--help` for options).
"""

import argparse
import asyncio
import contextlib
import functools
import itertools
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import redis

from bench.common import Target, emit, figure, median, quiet_logging, record, run
from bench.loadgen import order_request, read_status
from bench.sse_client import SseReader, stream_request
from tests.support.processes import free_port, veloz_env
from tests.support.redis import RedisServer
from veloz.api.stream_hub import GATEWAY_FLUSH_INTERVAL_S
from veloz.engine.views.streams import stream_events
from veloz.runtime.gateway.follower import decode_entry, entry_seq

NAME = "gateway_fanout"
RESTING_PRICE = 30_000  # far below the sim market (near 50,000): the orders rest
STREAM = "veloz:events"
TARGETS = (Target("p99_lag_ms", "<=", 100), Target("lost_events", "<=", 0))
REQUEST = stream_request("/api/stream?types=order_update")
BIN_NS = 10_000  # lag histogram resolution: 10 us
CLK_TCK = os.sysconf("SC_CLK_TCK")
PLACE_DELAY_S = 0.05  # from the call to the first order


@dataclass(frozen=True, slots=True)
class Options:
    clients: int
    rate: float  # events/s (two per order)
    duration: float
    warmup: float
    grace: float
    drain: float
    runs: int
    gateways: int
    steps: tuple[float, ...]
    step_duration: float
    client_procs: int
    phases: str
    flush_ms: float | None  # VELOZ_STREAM_FLUSH_MS of the gateways; None: their default
    patch: Path | None  # an experiment: Python run in each gateway before it starts
    directory: Path


# -- processes -----------------------------------------------------------------------------


class Proc:
    """A `veloz` process in a session of its own, so that it and its children (the
    engine's projector) can be ended by its process group, never by name."""

    def __init__(
        self, name: str, args: list[str], env: dict[str, str], log: Path, prelude: str = ""
    ) -> None:
        self.name = name
        self.port = int(args[args.index("--port") + 1])
        self.base = f"http://127.0.0.1:{self.port}"
        # `prelude`: code run before the command (an experiment's patch), else `-m veloz`.
        start = ["-c", f"{prelude}\nfrom veloz.cli.main import main\nmain()"] if prelude else []
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, *(start or ["-m", "veloz"]), *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, within_s: float = 90) -> None:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.base + "/health/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready within {within_s} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # what is left of its group
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


@dataclass
class Cluster:
    redis: RedisServer
    engine: Proc
    gateways: list[Proc] = field(default_factory=list)

    def cpu_pids(self) -> dict[str, int]:
        """The processes whose CPU is accounted: the engine's children (the projector)
        are looked up now, since the engine starts them."""
        pids = {"engine": self.engine.pid}
        for n, child in enumerate(children_of(self.engine.pid)):
            pids[f"engine_child_{n}" if n else "projector"] = child
        for n, gateway in enumerate(self.gateways):
            pids[f"gateway_{n}"] = gateway.pid
        assert self.redis.process is not None
        pids["redis"] = self.redis.process.pid
        pids["driver"] = os.getpid()
        return pids


def children_of(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(p) for p in found]


@contextlib.contextmanager
def cluster(
    directory: Path, gateways: int, flush_ms: float | None, patch: Path | None = None
) -> Iterator[Cluster]:
    """Redis, the engine publishing to it, then `gateways` replicas; all stopped on the
    way out, whatever happened."""
    server = RedisServer(directory / "redis")
    server.start()
    engine: Proc | None = None
    replicas: list[Proc] = []
    try:
        env = veloz_env(
            directory / "wal",
            VELOZ_REDIS_URL=server.url,
            VELOZ_TRUSTED_PROXIES="127.0.0.1",
            VELOZ_LOG_LEVEL="warn",
            VELOZ_SIM_TICK_INTERVAL_MS="1000",  # market ticks add no load
            VELOZ_MARKET_SYMBOL="BTCUSDT",
            VELOZ_SIM_BALANCES="USDT=1000000000000",
            # What is measured is the fan-out, not the API's request limits.
            VELOZ_API_IP_RATE_LIMIT="1000000",
            VELOZ_API_RATE_LIMIT="1000000",
        )
        port = free_port()
        engine = Proc(
            "engine",
            ["engine", "--port", str(port), "--host", "127.0.0.1"],
            env,
            directory / "engine.log",
        )
        engine.wait_ready()
        for n in range(gateways):
            settings = env | {
                "VELOZ_ENGINE_URL": engine.base,
                "VELOZ_GATEWAY_NAME": f"gw-{n}",
                "VELOZ_GATEWAY_AUDIT_DIR": str(directory / f"gateway-{n}-audit"),
            }
            if flush_ms is not None:
                settings["VELOZ_STREAM_FLUSH_MS"] = f"{flush_ms:g}"
            replica = Proc(
                f"gateway {n}",
                ["gateway", "--port", str(free_port()), "--host", "127.0.0.1"],
                settings,
                directory / f"gateway-{n}.log",
                prelude=gateway_prelude(patch),
            )
            replicas.append(replica)
        for replica in replicas:
            replica.wait_ready()
        yield Cluster(server, engine, replicas)
    finally:
        for replica in replicas:
            replica.stop()
        if engine is not None:
            engine.stop()
        server.stop()


def gateway_prelude(patch: Path | None) -> str:
    """An experiment, not the shipped gateway: a file of Python run in the gateway process
    before it starts (a candidate change, tried without editing src/)."""
    if patch is None:
        return ""
    return f"exec(compile(open({str(patch)!r}).read(), {str(patch)!r}, 'exec'))"


def machine_busy() -> float:
    """CPU seconds every core of the machine spent not idle, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def cpu_ticks(pid: int) -> float:
    """utime + stime of a process, in seconds (nan once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def metrics_of(gateway: Proc) -> str:
    with urllib.request.urlopen(gateway.base + "/metrics", timeout=5) as answer:
        return cast(bytes, answer.read()).decode()


def sse_clients(gateway: Proc) -> int:
    found = re.search(r"^veloz_sse_clients ([\d.e+]+)$", metrics_of(gateway), re.MULTILINE)
    return int(float(found.group(1))) if found else 0


DELIVERY = re.compile(
    r'^veloz_gateway_delivery_seconds_(bucket\{le="([^"]+)"\}|sum|count) ([\d.e+-]+)$', re.M
)


def deliveries(gateways: list[Proc]) -> dict[str, float]:
    """The gateways' own `veloz_gateway_delivery_seconds` (event time to arrival at the
    gateway from Redis), summed over them: cumulative bucket counts by bound, sum, count."""
    found: dict[str, float] = {}
    for gateway in gateways:
        for match in DELIVERY.finditer(metrics_of(gateway)):
            key = match.group(2) or match.group(1)
            found[key] = found.get(key, 0.0) + float(match.group(3))
    return found


def to_gateway(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Mean and p99 (a bucket's upper bound) of the event-to-gateway time during a load."""
    count = after.get("count", 0.0) - before.get("count", 0.0)
    if count <= 0:
        return {"to_gateway_mean_ms": math.nan, "to_gateway_p99_ms_at_most": math.nan}
    mean = (after["sum"] - before.get("sum", 0.0)) / count
    p99 = math.inf
    for bound in sorted((k for k in after if k[0].isdigit()), key=float):
        if after[bound] - before.get(bound, 0.0) >= 0.99 * count:
            p99 = float(bound)
            break
    return {"to_gateway_mean_ms": mean * 1000, "to_gateway_p99_ms_at_most": p99 * 1000}


# -- the orders ----------------------------------------------------------------------------


@dataclass
class Placed:
    sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    late_s: float = 0.0  # how far behind the schedule the last order went out


async def place(port: int, orders_per_s: float, seconds: float, tag: str) -> Placed:
    """Orders on a fixed schedule (open loop) over keep-alive connections to the engine:
    connection k sends orders k, k + C, k + 2C, ... each at its scheduled time, or at once
    when it is already late (a slow engine shows as a rate below the one asked)."""
    connections = min(64, max(4, math.ceil(orders_per_s / 25)))
    total = int(orders_per_s * seconds)
    placed = Placed()
    start = time.perf_counter() + PLACE_DELAY_S

    async def connection(index: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for number in range(index, total, connections):
                scheduled = start + number / orders_per_s
                await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
                placed.late_s = max(placed.late_s, time.perf_counter() - scheduled)
                writer.write(order_request(number, tag, price=RESTING_PRICE))
                status = await read_status(reader)
                placed.sent += 1
                placed.statuses[status] = placed.statuses.get(status, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(connection(k) for k in range(connections)))
    return placed


# -- one measurement -----------------------------------------------------------------------


def order_updates_after(client: "redis.Redis", after_seq: int) -> tuple[list[int], list[int]]:
    """The (seq, ts_ns) of the stream's entries after `after_seq` that are order_update
    events: what every client connected before them must receive."""
    seqs: list[int] = []
    stamps: list[int] = []
    start = f"{after_seq + 1}-0"
    while True:
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]], client.xrange(STREAM, min=start, count=10_000)
        )
        for entry_id, fields in entries:
            seq = entry_seq(entry_id)
            message = decode_entry(seq, fields)
            if message is None:
                continue
            if any(e["type"] == "order_update" for e in stream_events(message)):
                seqs.append(seq)
                stamps.append(message.event.ts_ns)
        if len(entries) < 10_000:
            return seqs, stamps
        start = f"{entry_seq(entries[-1][0]) + 1}-0"


def stream_end(client: "redis.Redis") -> int:
    newest = cast(list[tuple[bytes, Any]], client.xrevrange(STREAM, count=1))
    return entry_seq(newest[0][0]) if newest else 0


async def start_clients(
    ports: list[int], clients: int, procs: int
) -> list[asyncio.subprocess.Process]:
    started = []
    for n in range(procs):
        # Process n takes clients n, n + procs, ...: every process spreads over every port.
        count = len(range(n, clients, procs))
        rotated = ports[n % len(ports) :] + ports[: n % len(ports)]
        started.append(
            await asyncio.create_subprocess_exec(
                *[sys.executable, "-m", "bench.gateway_fanout"],
                *["--client-ports", ",".join(map(str, rotated)), "--clients", str(count)],
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        )
    return started


async def wait_connected(
    processes: list[asyncio.subprocess.Process], gateways: list[Proc], clients: int
) -> None:
    for process in processes:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 120)
        if not line.startswith(b"ready"):
            raise RuntimeError(f"the client process did not connect: {line!r}")
    deadline = time.monotonic() + 60
    while (connected := sum(sse_clients(g) for g in gateways)) < clients:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {connected} of {clients} SSE clients on the gateways")
        await asyncio.sleep(0.1)


async def measure(
    cluster: Cluster, options: Options, *, rate: float, seconds: float, tag: str
) -> dict[str, float]:
    """One measurement: the clients connect, the orders go in, the clients report."""
    stream = cluster.redis.client()
    gateways = cluster.gateways
    processes = await start_clients(
        [g.port for g in gateways], options.clients, options.client_procs
    )
    try:
        await wait_connected(processes, gateways, options.clients)
        await asyncio.sleep(0.5)  # quiet before the load
        after_seq = stream_end(stream)
        pids = cluster.cpu_pids() | {f"clients_{n}": p.pid for n, p in enumerate(processes)}
        delivered_before = deliveries(gateways)
        cpu_before = {name: cpu_ticks(pid) for name, pid in pids.items()}
        busy_before = machine_busy()
        began = time.perf_counter()
        measured_from_ns = time.time_ns() + int((PLACE_DELAY_S + options.warmup) * 1e9)
        placed = await place(cluster.engine.port, rate / 2, options.warmup + seconds, tag)
        elapsed = time.perf_counter() - began
        cpu = {name: (cpu_ticks(pid) - cpu_before[name]) / elapsed for name, pid in pids.items()}
        busy = (machine_busy() - busy_before) / elapsed
        await asyncio.sleep(options.grace)  # the last events reach the clients
        delivered = to_gateway(delivered_before, deliveries(gateways))
        seqs, stamps = order_updates_after(stream, after_seq)
        times_file = options.directory / f"times-{tag}.json"
        times_file.write_text(
            json.dumps({"measured_from_ns": measured_from_ns, "seqs": seqs, "ts": stamps})
        )
        outputs = []
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(f"stop {options.drain:g} {times_file}\n".encode())
            await process.stdin.drain()
        for process in processes:
            out, _ = await asyncio.wait_for(process.communicate(), 300)
            outputs.append(json.loads(out.decode().splitlines()[-1]))
    except BaseException:
        for process in processes:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        raise
    measured_until_ns = measured_from_ns + int(seconds * 1e9)
    measured = [ts for ts in stamps if measured_from_ns <= ts < measured_until_ns]
    result = merge_clients(outputs) | delivered
    result |= {
        "events_published": len(seqs),
        "orders_sent": placed.sent,
        "orders_acknowledged": placed.statuses.get(200, 0),
        "asked_events_per_s": rate,
        "achieved_events_per_s": len(measured) / seconds,
        "placement_max_late_ms": placed.late_s * 1000,
    }
    result |= {f"cpu_per_s_{name}": value for name, value in cpu.items()}
    result["cpu_per_s_total"] = sum(v for v in cpu.values() if math.isfinite(v))
    # The whole machine, and what processes other than these took of it (other work).
    result["cpu_per_s_machine"] = busy
    result["cpu_per_s_other_processes"] = max(0.0, busy - result["cpu_per_s_total"])
    return result


def merge_clients(outputs: list[dict[str, Any]]) -> dict[str, float]:
    bins: dict[int, int] = {}
    for output in outputs:
        for b, n in zip(output["lag_bins"], output["lag_counts"], strict=True):
            bins[b] = bins.get(b, 0) + n
    ordered = sorted(bins.items())
    total = sum(n for _, n in ordered)

    def quantile(fraction: float) -> float:
        if not total:
            return math.nan
        rank = max(1, math.ceil(fraction * total))
        for b, cumulative in zip(
            (b for b, _ in ordered), itertools.accumulate(n for _, n in ordered), strict=True
        ):
            if cumulative >= rank:
                return (b + 1) * BIN_NS / 1e6  # the bin's upper edge
        return math.nan

    summed = {
        key: float(sum(o[key] for o in outputs))
        for key in ("clients_connected", "clients_cut_off", "lost_events", "duplicate_events")
    }
    chunks = sum(o["chunks"] for o in outputs)
    return summed | {
        "deliveries_measured": float(total),
        "events_per_client_read": total / chunks if chunks else math.nan,
        "p50_lag_ms": quantile(0.50),
        "p99_lag_ms": quantile(0.99),
        "max_lag_ms": max(o["max_lag_ns"] for o in outputs) / 1e6,
    }


# -- the client side -------------------------------------------------------------------------


async def run_clients(ports: list[int], count: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    readers: list[SseReader] = []
    for start in range(0, count, 100):  # in batches: the listen backlog is finite
        batch = range(start, min(start + 100, count))
        connected = await asyncio.gather(
            *(
                loop.create_connection(
                    functools.partial(SseReader, REQUEST), "127.0.0.1", ports[n % len(ports)]
                )
                for n in batch
            )
        )
        readers += [reader for _, reader in connected]
    await asyncio.gather(*(r.head for r in readers))
    print(f"ready {sum(r.ok for r in readers)}", flush=True)
    line = await loop.run_in_executor(None, sys.stdin.readline)
    command, _, rest = line.strip().partition(" ")
    if command != "stop":
        raise SystemExit(f"unexpected command {line!r}")
    drain_s, _, path = rest.partition(" ")
    times = json.loads(await loop.run_in_executor(None, Path(path).read_text))
    # Late is not lost: wait (at most `drain_s`) until every open stream has the last event.
    last = times["seqs"][-1] if times["seqs"] else 0
    give_up = time.monotonic() + float(drain_s)
    while time.monotonic() < give_up:
        if all(r.ended_ns or (r.ids and r.ids[-1] >= last) for r in readers):
            break
        await asyncio.sleep(0.05)
    stopped_ns = time.time_ns()
    for reader in readers:
        reader.close()
    return summarise_clients(readers, times, stopped_ns)


def summarise_clients(
    readers: list[SseReader], times: dict[str, Any], stopped_ns: int
) -> dict[str, Any]:
    seqs = np.asarray(times["seqs"], dtype=np.int64)
    stamps = np.asarray(times["ts"], dtype=np.int64)
    measured_from = int(times["measured_from_ns"])
    lost = duplicates = cut_off = chunks = 0
    lags: list[np.ndarray[Any, np.dtype[np.int64]]] = []
    for reader in readers:
        ids = np.frombuffer(reader.ids, dtype=np.int64)
        received = np.frombuffer(reader.received_ns, dtype=np.int64)
        unique = np.unique(ids)
        duplicates += len(ids) - len(unique)
        if reader.ended_ns and reader.ended_ns < stopped_ns:
            cut_off += 1
        else:
            lost += int(len(seqs) - np.isin(seqs, unique, assume_unique=True).sum())
        if not len(seqs) or not len(ids):
            continue
        where = np.minimum(np.searchsorted(seqs, ids), len(seqs) - 1)
        known = seqs[where] == ids
        created = stamps[where]
        keep = known & (created >= measured_from)
        chunks += len(np.unique(received[keep]))  # reads that brought measured events
        lags.append(received[keep] - created[keep])
    every = np.concatenate(lags) if lags else np.zeros(0, dtype=np.int64)
    bins, counts = np.unique(np.maximum(every, 0) // BIN_NS, return_counts=True)
    return {
        "clients_connected": sum(r.ok for r in readers),
        "clients_cut_off": cut_off,
        "lost_events": lost,
        "duplicate_events": duplicates,
        "lag_bins": bins.tolist(),
        "lag_counts": counts.tolist(),
        "max_lag_ns": int(every.max()) if len(every) else 0,
        "chunks": chunks,
    }


def client_main(args: argparse.Namespace) -> None:
    ports = [int(p) for p in args.client_ports.split(",")]
    result = run(lambda: run_clients(ports, args.clients))
    print(json.dumps(result), flush=True)


# -- the bench ---------------------------------------------------------------------------------


def unit_of(key: str) -> str:
    if key.endswith(("_ms", "_ms_at_most")):
        return "ms"
    if key.startswith("cpu_per_s"):
        return "cpu-s/s"
    if "events_per_s" in key:
        return "events/s"
    if "clients" in key:
        return "clients"
    if "events" in key:
        return "events"
    return "count"


REPORTED = ("p50_lag_ms", "p99_lag_ms", "max_lag_ms", "lost_events", "clients_cut_off")


def phase_a(options: Options) -> dict[str, Any]:
    rounds = []
    with cluster(
        options.directory / "a", options.gateways, options.flush_ms, options.patch
    ) as made:
        for number in range(1, options.runs + 1):
            result = run(
                functools.partial(
                    measure,
                    made,
                    options,
                    rate=options.rate,
                    seconds=options.duration,
                    tag=f"a{number}",
                )
            )
            rounds.append(result)
            for key in (
                *REPORTED,
                "achieved_events_per_s",
                "to_gateway_mean_ms",
                "to_gateway_p99_ms_at_most",
                "events_per_client_read",
            ):
                emit(NAME, key, result[key], unit_of(key), run=number)
            cpu = {
                k.removeprefix("cpu_per_s_"): round(v, 3) for k, v in result.items() if "cpu" in k
            }
            emit(NAME, "cpu_per_s", cpu["total"], "cpu-s/s", run=number, processes=cpu)
    summary: dict[str, Any] = {}
    for key in rounds[0]:
        runs = [r[key] for r in rounds]
        summary[key] = figure(median(runs), unit_of(key), runs)
    for key in REPORTED:
        emit(NAME, f"median_{key}", summary[key]["value"], unit_of(key), runs=len(rounds))
    return summary


def phase_b(options: Options) -> tuple[dict[str, Any], list[dict[str, float]]]:
    steps = []
    with cluster(options.directory / "b", 1, options.flush_ms, options.patch) as made:
        for rate in options.steps:
            result = run(
                functools.partial(
                    measure,
                    made,
                    options,
                    rate=rate,
                    seconds=options.step_duration,
                    tag=f"b{rate:g}",
                )
            )
            steps.append(result)
            emit(
                NAME,
                f"one_gateway_{rate:g}_p99_lag_ms",
                result["p99_lag_ms"],
                "ms",
                achieved_events_per_s=round(result["achieved_events_per_s"], 1),
                lost=result["lost_events"],
                cut_off=result["clients_cut_off"],
                gateway_cpu_per_s=round(result["cpu_per_s_gateway_0"], 3),
                engine_cpu_per_s=round(result["cpu_per_s_engine"], 3),
                to_gateway_p99_ms_at_most=result["to_gateway_p99_ms_at_most"],
                clients_cpu_per_s=round(
                    sum(v for k, v in result.items() if k.startswith("cpu_per_s_clients")), 3
                ),
            )
    figures: dict[str, Any] = {}
    sustained = 0.0
    for rate, result in zip(options.steps, steps, strict=True):
        prefix = f"one_gateway_{rate:g}_"
        for key in (
            "achieved_events_per_s",
            "p50_lag_ms",
            "p99_lag_ms",
            "max_lag_ms",
            "lost_events",
            "clients_cut_off",
            "cpu_per_s_gateway_0",
            "cpu_per_s_engine",
            "cpu_per_s_redis",
            "cpu_per_s_projector",
            "cpu_per_s_total",
            "cpu_per_s_machine",
            "cpu_per_s_other_processes",
            "events_per_client_read",
            "to_gateway_mean_ms",
            "to_gateway_p99_ms_at_most",
        ):
            value = result.get(key, math.nan)
            figures[prefix + key] = figure(value, unit_of(key), [value])
        clients_cpu = sum(v for k, v in result.items() if k.startswith("cpu_per_s_clients"))
        figures[prefix + "cpu_per_s_clients"] = figure(clients_cpu, "cpu-s/s", [clients_cpu])
        held = result["lost_events"] == 0 and result["clients_cut_off"] == 0
        if result["p99_lag_ms"] <= 100 and held:
            sustained = max(sustained, result["achieved_events_per_s"])
    figures["one_gateway_sustained_events_per_s"] = figure(sustained, "events/s", [sustained])
    emit(NAME, "one_gateway_sustained_events_per_s", sustained, "events/s")
    return figures, steps


def notes_for(options: Options, load: str) -> str:
    flush = (
        f"{GATEWAY_FLUSH_INTERVAL_S * 1000:g} ms, the default"
        if options.flush_ms is None
        else f"{options.flush_ms:g} ms (VELOZ_STREAM_FLUSH_MS)"
    )
    return (
        f"Real processes on loopback: private redis-server (no persistence), veloz engine "
        f"(VELOZ_WAL_SYNC default true, projector as its child, sim ticks every 1 s) "
        f"publishing to it, veloz gateway replicas. Phase A: {options.clients} SSE clients "
        f"(GET /api/stream?types=order_update, raw asyncio protocols in "
        f"{options.client_procs} process(es)) spread round-robin over {options.gateways} "
        f"gateways, all connected first; {options.rate:g} events/s for {options.warmup:g} s "
        f"warm-up + {options.duration:g} s measured, {options.runs} run(s), median. Events: "
        "resting LIMIT BUYs (price 30000) POSTed straight to the engine (not through the "
        "gateways) open loop on a fixed schedule, two order_update events each. Lag: client "
        "receive time minus the event's ts_ns (set by the engine before the journal write, "
        "so it includes the group commit: conservative), every (client, event) pair of the "
        "measured part, 10 us histogram bins (upper edge). Lost: order_update entries of the "
        "Redis stream (XRANGE) a client not cut off never received. cpu_per_s: CPU s per s "
        "of load from /proc/<pid>/stat, every process (the machine has "
        f"{os.cpu_count()} cores, shared by all of them and by other work). Phase B: all "
        f"clients on one gateway (fresh cluster), steps {list(options.steps)} events/s, "
        f"{options.step_duration:g} s each; sustained = highest achieved rate with p99 <= "
        f"100 ms, none lost, none cut off. Gateway stream hub flush interval: {flush}. {load}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=200, help="events/s in phase A (2/order)")
    parser.add_argument("--duration", type=float, default=15.0, help="measured s, phase A")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--grace", type=float, default=2.0, help="wait before ending streams")
    parser.add_argument(
        "--drain", type=float, default=30.0, help="most s the clients wait for late events"
    )
    parser.add_argument("--runs", type=int, default=3, help="phase A runs (median)")
    parser.add_argument("--gateways", type=int, default=3)
    parser.add_argument(
        "--steps",
        type=str,
        default="50,100,200,400,800,1600",
        help="phase B event rates (comma list)",
    )
    parser.add_argument("--step-duration", type=float, default=15.0, help="measured s per step")
    parser.add_argument("--client-procs", type=int, default=1, help="SSE client processes")
    parser.add_argument("--phases", choices=("ab", "a", "b"), default="ab")
    parser.add_argument(
        "--gateway-flush-ms",
        type=float,
        default=None,
        help="the gateways' VELOZ_STREAM_FLUSH_MS instead of their default (not recorded)",
    )
    parser.add_argument(
        "--gateway-patch",
        type=Path,
        default=None,
        help="experiment: a Python file run in each gateway before it starts (not recorded)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 clients, 5 s")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temp files")
    parser.add_argument("--client-ports", type=str, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.duration, args.step_duration, args.warmup = 100, 5.0, 5.0, 1.0
        args.runs, args.steps = 1, "200,800"
    return args


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}/{five:.2f}/{fifteen:.2f}"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.client_ports is not None:
        client_main(args)
        return
    quiet_logging()

    def interrupted(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # the clean-up below still runs

    signal.signal(signal.SIGTERM, interrupted)
    directory = Path(tempfile.mkdtemp(prefix="veloz-gwfan-", dir=args.dir))
    options = Options(
        clients=args.clients,
        rate=args.rate,
        duration=args.duration,
        warmup=args.warmup,
        grace=args.grace,
        drain=args.drain,
        runs=args.runs,
        gateways=args.gateways,
        steps=tuple(float(s) for s in args.steps.split(",")),
        step_duration=args.step_duration,
        client_procs=args.client_procs,
        phases=args.phases,
        flush_ms=args.gateway_flush_ms,
        patch=args.gateway_patch.resolve() if args.gateway_patch else None,
        directory=directory,
    )
    started = time.perf_counter()
    load_before = load_average()
    figures: dict[str, Any] = {}
    try:
        if "a" in options.phases:
            figures |= phase_a(options)
        if "b" in options.phases:
            figures |= phase_b(options)[0]
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    load = f"Load average (1/5/15 min) before: {load_before}, after: {load_average()}."
    for target in TARGETS:
        if target.figure in figures:
            value = figures[target.figure]["value"]
            emit(NAME, f"target {target.describe()}", value, "", met=target.met_by(value))
    experiment = options.flush_ms is not None or options.patch is not None
    if args.quick or options.phases != "ab" or experiment:
        return  # a smoke or partial run is printed, not recorded
    path = record(
        NAME,
        figures,
        notes_for(options, load),
        targets=TARGETS,
        extra={"wall_seconds": round(time.perf_counter() - started, 1), "load_average": load},
    )
    emit(NAME, "recorded", 0, "", path=str(path))


if __name__ == "__main__":
    main()
