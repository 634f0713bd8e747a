"""P1: durable order intake, in process.

What is measured: `EngineClient.submit_order` on a real `LiveEngine` with a synchronous
journal (`JournalConfig(sync=True)`, what `VELOZ_WAL_SYNC=true` selects) on the same disk
as /work. Each call runs the whole order path: validation, the in-memory apply (OMS,
portfolio lock), the `OrderNew` entry through group commit (`write` + `fdatasync`), the
acknowledgement, then the send to the sim venue whose `OrderAccepted` report is journaled
too. Orders are GTC LIMIT BUYs far below the one quote fed in, so they rest: every order
costs two journal entries and nothing else happens in between (no market timer).

Figures (each the median of `--runs` runs):
- closed-loop throughput (orders/s) and p50/p99 ack latency with N concurrent submitters
  (256 by default, also 64 and 1024): each submitter awaits its ack, then sends again;
- open-loop p50/p99 ack latency at a fixed offered rate (5,000 orders/s for ~3 s):
  orders are sent on schedule whether or not earlier ones were acknowledged;
- references measured in the same run, on the same disk:
  (a) one `os.write` + `os.fdatasync` per order record, sequentially: what a journal
      without group commit could do;
  (b) one PostgreSQL single-row INSERT committed per order, one connection, sequentially:
      what "store each order in the database before acking" could do;
- ratios intake/fsync and intake/postgres (computed per run, then the median).

Why the references are fair: both give the same guarantee the engine gives (the order is
on disk before the ack), on the same disk, in the same minute; both write a record of the
same size and shape (the reference (a) writes the engine's own framed `OrderNew` record;
(b) a row with the order's columns). Neither does any of the engine's other work, so they
flatter the references, not the engine.

Run: `.venv/bin/python -m bench.intake` (`--help` for options; `--profile` prints a cProfile
of one closed-loop run).
"""

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import math
import os
import pstats
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import (
    RESULTS_DIR,
    LoopName,
    Target,
    add_loop_argument,
    emit,
    figure,
    filesystem_of,
    median,
    percentile,
    quiet_logging,
    record,
    result_name,
    run,
)
from veloz.codec import encode_event
from veloz.execution.venues.sim import SimVenueConfig
from veloz.journal.framing import encode_record
from veloz.journal.writer import JournalConfig
from veloz.market.sim import SimMarketConfig
from veloz.model.commands import SubmitOrder
from veloz.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from veloz.model.events import OrderSubmitted
from veloz.model.market import QuoteTick
from veloz.runtime.client import LocalEngineClient
from veloz.runtime.live import EngineConfig, LiveEngine

NAME = "intake"
SYMBOL = "BTCUSDT"
BID, ASK = Decimal("50000"), Decimal("50001")
REST_PRICE = Decimal("47500.00")  # below the bid (it rests, never fills), inside the price band
QTY = Decimal("0.001")
TARGETS = (
    Target("throughput_256", ">=", 50_000),
    Target("paced_p99_ms", "<=", 2.0),
    Target("ratio_fsync", ">=", 8),
    Target("ratio_postgres", ">=", 20),
)


@dataclass(frozen=True, slots=True)
class IntakeRun:
    """One timed run: how many orders were acknowledged, how long it took, and every ack
    latency (submit call to ack) in nanoseconds, sorted."""

    orders: int
    seconds: float
    latencies_ns: list[int]

    @property
    def throughput(self) -> float:
        return self.orders / self.seconds

    def latency_ms(self, fraction: float) -> float:
        return percentile(self.latencies_ns, fraction) / 1e6


# -- the engine under test -----------------------------------------------------------------


def engine_config(directory: Path) -> EngineConfig:
    """A synchronous journal, a zero-latency sim venue with a balance no order exhausts,
    and no market timer: the bench feeds the one quote itself."""
    return EngineConfig(
        journal=JournalConfig(directory=str(directory), sync=True),
        market=SimMarketConfig(symbols=(SYMBOL,), seed=7),
        venue=SimVenueConfig(latency_ms=0, starting_balances={"USDT": Decimal(10**12)}),
        run_market=False,
    )


def the_quote() -> QuoteTick:
    size = Decimal("5")
    return QuoteTick(symbol=SYMBOL, bid=BID, ask=ASK, bid_size=size, ask_size=size, ts_ns=1)


def resting_buy() -> SubmitOrder:
    """A GTC LIMIT BUY far below the market; the engine names it (no client id)."""
    return SubmitOrder(symbol=SYMBOL, side=OrderSide.BUY, qty=QTY, price=REST_PRICE)


@contextlib.asynccontextmanager
async def running_engine(parent: Path) -> AsyncIterator[tuple[LiveEngine, LocalEngineClient]]:
    """A started engine on a fresh journal directory under `parent`, removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="veloz-intake-", dir=parent))
    engine = LiveEngine(engine_config(directory))
    try:
        await engine.start()
        engine.market.on_data(the_quote())
        yield engine, LocalEngineClient(engine)
    finally:
        await engine.stop()
        shutil.rmtree(directory, ignore_errors=True)


async def warm_up(client: LocalEngineClient, orders: int, concurrency: int) -> None:
    """Untimed orders first, so the timed run does not pay for first-call costs."""
    await closed_loop(client, orders, concurrency)


def isolate() -> None:
    """Collect the garbage earlier runs left (their engines hold reference cycles) before a
    timed run starts, so a run does not pay for its predecessor's collection. The engine's
    own garbage collection during the run is measured, not avoided."""
    gc.collect()


class BatchCounter:
    """Journal entries per group commit (per fdatasync) from the engine's journal stats,
    counted from construction on."""

    def __init__(self, engine: LiveEngine) -> None:
        self._stats = engine.journal_stats.batch_size
        self._entries, self._batches = self._stats.total, self._stats.count

    def mean_batch(self) -> float:
        batches = self._stats.count - self._batches
        return (self._stats.total - self._entries) / batches if batches else math.nan


# -- the load ----------------------------------------------------------------------------


async def closed_loop(client: LocalEngineClient, orders: int, concurrency: int) -> IntakeRun:
    """`concurrency` submitters, each sending its next order as soon as the last is acked."""
    command = resting_buy()
    remaining = iter(range(orders))
    latencies: list[int] = []

    async def submitter() -> None:
        clock = time.perf_counter_ns
        for _ in remaining:
            started = clock()
            placed = await client.submit_order(command)
            latencies.append(clock() - started)
            assert placed.order.status is OrderStatus.PENDING_NEW

    started = time.perf_counter()
    await asyncio.gather(*(submitter() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    latencies.sort()
    return IntakeRun(len(latencies), seconds, latencies)


async def open_loop(client: LocalEngineClient, rate: float, seconds: float) -> IntakeRun:
    """Offer `rate` orders/s for `seconds` on a fixed schedule (not waiting for acks); the
    latency of each is from its submit call to its ack."""
    loop = asyncio.get_running_loop()
    command = resting_buy()
    latencies: list[int] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one() -> None:
        started = time.perf_counter_ns()
        await client.submit_order(command)
        latencies.append(time.perf_counter_ns() - started)

    total = int(rate * seconds)
    sent = 0
    begin = loop.time()
    while sent < total:
        due = min(total, int((loop.time() - begin) * rate) + 1)
        for _ in range(due - sent):
            task = loop.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        sent = due
        await asyncio.sleep(0.0005)
    await asyncio.gather(*tasks)
    elapsed = loop.time() - begin
    latencies.sort()
    return IntakeRun(len(latencies), elapsed, latencies)


# -- the references ----------------------------------------------------------------------


def order_record() -> bytes:
    """The engine's own framed `OrderNew` record for a typical order (~200 bytes)."""
    event = OrderSubmitted(
        client_order_id="vz-19a8b7c6d5e-123456",
        symbol=SYMBOL,
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        qty=QTY,
        price=REST_PRICE,
        ts_ns=time.time_ns(),
    )
    entry_type, payload = encode_event(event)
    return encode_record(entry_type, 1, event.ts_ns, payload)


@dataclass(frozen=True, slots=True)
class FsyncReference:
    """Sequential `write` + `fdatasync` per record: its rate and each fdatasync's latency."""

    ops: float
    p50_ms: float
    p99_ms: float


def fsync_reference(parent: Path, count: int) -> FsyncReference:
    """Orders/s when every order record gets its own `write` + `fdatasync`, sequentially,
    appended to a file on the same disk as the journal (what group commit is measured
    against). The fdatasync latencies bound what any durable ack can achieve here."""
    data = order_record()
    directory = Path(tempfile.mkdtemp(prefix="veloz-fsync-", dir=parent))
    fd = os.open(directory / "reference.wal", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    clock = time.perf_counter_ns
    syncs: list[int] = []
    try:
        started = time.perf_counter()
        for _ in range(count):
            os.write(fd, data)
            before = clock()
            os.fdatasync(fd)
            syncs.append(clock() - before)
        ops = count / (time.perf_counter() - started)
    finally:
        os.close(fd)
        shutil.rmtree(directory, ignore_errors=True)
    syncs.sort()
    return FsyncReference(ops, percentile(syncs, 0.50) / 1e6, percentile(syncs, 0.99) / 1e6)


PG_TABLE = f"veloz_bench_orders_{os.getpid()}"
PG_COLUMNS = (
    "client_order_id text PRIMARY KEY, symbol text NOT NULL, side text NOT NULL, "
    "order_type text NOT NULL, time_in_force text NOT NULL, qty numeric NOT NULL, "
    "price numeric, ts_ns bigint NOT NULL, strategy_id text"
)


async def postgres_reference(dsn: str, count: int) -> float:
    """Orders/s when every order is one single-row INSERT committed on its own (autocommit),
    one connection, sequentially: the durable-before-ack pattern on a database. The table
    holds the order's columns and is created and dropped here."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f"DROP TABLE IF EXISTS {PG_TABLE}")
        await connection.execute(f"CREATE TABLE {PG_TABLE} ({PG_COLUMNS})")
        insert = await connection.prepare(
            f"INSERT INTO {PG_TABLE} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        )
        started = time.perf_counter()
        for i in range(count):
            await insert.fetch(
                f"pg-{i}", SYMBOL, "BUY", "LIMIT", "GTC", QTY, REST_PRICE, time.time_ns(), None
            )
        return count / (time.perf_counter() - started)
    finally:
        with contextlib.suppress(Exception):
            await connection.execute(f"DROP TABLE IF EXISTS {PG_TABLE}")
        await connection.close()


async def postgres_settings(dsn: str) -> dict[str, str]:
    """The durability settings the reference ran with (fsync off would make it unfair)."""
    connection = await asyncpg.connect(dsn)
    try:
        names = ("fsync", "synchronous_commit", "wal_sync_method", "data_directory")
        return {n: str(await connection.fetchval(f"SHOW {n}")) for n in names}
    finally:
        await connection.close()


# -- one round and the whole bench ---------------------------------------------------------


@dataclass(slots=True)
class Options:
    directory: Path
    orders: int
    concurrency: int
    other_concurrency: tuple[int, ...]
    other_orders: int
    rate: float
    paced_seconds: float
    fsync_count: int
    pg_count: int
    dsn: str | None
    warmup: int


async def one_round(options: Options, number: int) -> dict[str, float]:
    """Every figure once, references first, all within the same minute or so."""
    figures = await references(options, number)
    levels = [(options.concurrency, options.orders)]
    levels += [(c, options.other_orders) for c in options.other_concurrency]
    for concurrency, orders in levels:
        figures.update(await closed_level(options, concurrency, orders, number))
    figures.update(await paced_level(options, number))
    main = figures[f"throughput_{options.concurrency}"]
    figures["ratio_fsync"] = main / figures["fsync_ops"]
    if "postgres_ops" in figures:
        figures["ratio_postgres"] = main / figures["postgres_ops"]
    return figures


async def references(options: Options, number: int) -> dict[str, float]:
    fsync = fsync_reference(options.directory, options.fsync_count)
    figures = {"fsync_ops": fsync.ops, "fsync_p50_ms": fsync.p50_ms, "fsync_p99_ms": fsync.p99_ms}
    emit(NAME, "fsync_reference", fsync.ops, "orders/s", run=number, p99_ms=fsync.p99_ms)
    if options.dsn is not None:
        figures["postgres_ops"] = await postgres_reference(options.dsn, options.pg_count)
        emit(NAME, "postgres_reference", figures["postgres_ops"], "orders/s", run=number)
    return figures


async def closed_level(
    options: Options, concurrency: int, orders: int, number: int
) -> dict[str, float]:
    """One closed-loop run on a fresh engine and journal."""
    async with running_engine(options.directory) as (engine, client):
        await warm_up(client, options.warmup, concurrency)
        isolate()
        batches = BatchCounter(engine)
        result = await closed_loop(client, orders, concurrency)
        entries_per_fsync = batches.mean_batch()
    figures = closed_figures(result, concurrency, number)
    figures[f"entries_per_fsync_{concurrency}"] = entries_per_fsync
    return figures


async def paced_level(options: Options, number: int) -> dict[str, float]:
    """One open-loop run at `options.rate` on a fresh engine and journal."""
    async with running_engine(options.directory) as (engine, client):
        await warm_up(client, options.warmup, 64)
        isolate()
        batches = BatchCounter(engine)
        paced = await open_loop(client, options.rate, options.paced_seconds)
        entries_per_fsync = batches.mean_batch()
    figures = {
        "paced_p50_ms": paced.latency_ms(0.50),
        "paced_p99_ms": paced.latency_ms(0.99),
        "paced_max_ms": paced.latency_ms(1.0),
        "paced_achieved": paced.throughput,
        "entries_per_fsync_paced": entries_per_fsync,
    }
    for key in ("paced_p50_ms", "paced_p99_ms", "paced_max_ms"):
        emit(NAME, key, figures[key], "ms", run=number, rate=options.rate)
    return figures


def closed_figures(result: IntakeRun, concurrency: int, number: int) -> dict[str, float]:
    figures = {
        f"throughput_{concurrency}": result.throughput,
        f"p50_ms_{concurrency}": result.latency_ms(0.50),
        f"p99_ms_{concurrency}": result.latency_ms(0.99),
    }
    emit(NAME, "throughput", result.throughput, "orders/s", run=number, concurrency=concurrency)
    for fraction, label in ((0.50, "p50"), (0.99, "p99")):
        emit(NAME, f"ack_{label}", result.latency_ms(fraction), "ms", run=number, c=concurrency)
    return figures


UNITS = {
    "throughput": "orders/s",
    "entries_per_fsync": "entries",
    "fsync_ops": "orders/s",
    "postgres_ops": "orders/s",
    "paced_achieved": "orders/s",
    "ratio": "x",
}


def unit_of(key: str) -> str:
    return next((unit for prefix, unit in UNITS.items() if key.startswith(prefix)), "ms")


def summarise(rounds: list[dict[str, float]]) -> dict[str, Any]:
    """The median of every figure over the rounds, each with its runs."""
    summary: dict[str, Any] = {}
    for key in rounds[0]:
        runs = [r[key] for r in rounds if key in r]
        summary[key] = figure(median(runs), unit_of(key), runs)
        emit(NAME, f"median_{key}", summary[key]["value"], unit_of(key), runs=len(runs))
    return summary


async def bench(options: Options, runs: int) -> tuple[list[dict[str, float]], dict[str, str]]:
    settings = await postgres_settings(options.dsn) if options.dsn else {}
    rounds = [await one_round(options, number) for number in range(1, runs + 1)]
    return rounds, settings


# -- profiling -------------------------------------------------------------------------------


async def profiled_run(options: Options) -> IntakeRun:
    async with running_engine(options.directory) as (_, client):
        await warm_up(client, options.warmup, options.concurrency)
        isolate()
        with cProfile.Profile() as profiler:
            result = await closed_loop(client, options.orders, options.concurrency)
    report = profile_report(profiler, result)
    print(report)
    (RESULTS_DIR / "intake_profile.txt").write_text(report)
    return result


def profile_report(profiler: cProfile.Profile, result: IntakeRun, top: int = 35) -> str:
    """Top functions by cumulative and by own time, per order (event loop thread only)."""
    out = io.StringIO()
    out.write(
        f"# cProfile of one closed-loop run: {result.orders} orders, "
        f"{result.throughput:,.0f} orders/s under the profiler\n"
    )
    for sort in ("cumulative", "tottime"):
        out.write(f"\n## sorted by {sort}\n")
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats(sort).print_stats(top)
    return out.getvalue()


# -- command line -------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Options]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_loop_argument(parser)
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temp journals")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--other-concurrency", type=int, nargs="*", default=[64, 1024])
    parser.add_argument("--other-orders", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=5_000)
    parser.add_argument("--paced-seconds", type=float, default=3.0)
    parser.add_argument("--fsync-count", type=int, default=3_000)
    parser.add_argument("--pg-count", type=int, default=2_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile one run, no figures")
    args = parser.parse_args(argv)
    options = Options(
        directory=(args.dir or Path(tempfile.gettempdir())).resolve(),
        orders=args.orders,
        concurrency=args.concurrency,
        other_concurrency=tuple(args.other_concurrency),
        other_orders=args.other_orders,
        rate=args.rate,
        paced_seconds=args.paced_seconds,
        fsync_count=args.fsync_count,
        pg_count=args.pg_count,
        dsn=None if args.no_postgres else args.dsn,
        warmup=args.warmup,
    )
    return args, options


def notes_for(options: Options, disk: dict[str, Any], same_disk: bool) -> str:
    return (
        f"Journal and fsync reference under {disk['path']} ({disk['device']} "
        f"{disk['fs_type']}, same device as /work: {same_disk}). Closed loop: "
        f"{options.orders} orders at concurrency {options.concurrency}, "
        f"{options.other_orders} at {list(options.other_concurrency)}, after "
        f"{options.warmup} warm-up orders, each level on a fresh engine and journal. Paced: "
        f"{options.rate:g} orders/s for {options.paced_seconds:g} s, latency from the "
        "submit call to the ack. Resting LIMIT BUYs: two journal entries per order "
        "(OrderNew before the ack, OrderAccepted after). Ratios are per run, then the median."
    )


def main(argv: list[str] | None = None) -> None:
    args, options = parse_args(argv)
    loop: LoopName = args.loop
    quiet_logging()
    options.directory.mkdir(parents=True, exist_ok=True)
    if args.profile:
        run(lambda: profiled_run(options), loop)
        return
    disk = filesystem_of(options.directory)
    same_disk = disk["st_dev"] == os.stat("/work").st_dev if Path("/work").exists() else None
    started = time.perf_counter()
    rounds, settings = run(lambda: bench(options, args.runs), loop)
    summary = summarise(rounds)
    path = record(
        result_name(NAME, loop),
        summary,
        notes_for(options, disk, bool(same_disk)),
        targets=TARGETS,
        loop=loop,
        extra={
            "journal_disk": disk,
            "postgres": settings,
            "record_bytes": len(order_record()),
            "wall_seconds": round(time.perf_counter() - started, 1),
        },
    )
    print_targets(path)


def print_targets(path: Path) -> None:
    for target in json.loads(path.read_text())["targets"]:
        emit(NAME, "target", target["value"] or 0, "", target=target["target"], met=target["met"])


if __name__ == "__main__":
    main()
