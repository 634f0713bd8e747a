"""Issue 6: history projector throughput (rows/s) on SQLite and PostgreSQL, against one
INSERT + COMMIT per row, in the same run.

A real journal is built once: a real `LiveEngine` (`JournalConfig(sync=False)` to build
quickly, a zero-latency sim venue, one deep quote) takes `--orders` MARKET IOC orders
through `EngineClient.submit_order`, BUY and SELL alternately, so every order journals
`OrderNew`, `OrderAccepted` and `OrderFilled` (one order row and one fill row in the
store). Then, each of `--runs` runs:

- projector: `rebuild(store, journal_dir)` on a fresh, migrated store (a new SQLite file;
  a new PostgreSQL database), i.e. read, decode and fold the whole journal and write it in
  batches of `ProjectorConfig.batch_entries`, one transaction each. Rows/s, entries/s and
  the process CPU per entry (`time.process_time`, every thread of this process; the
  PostgreSQL server's CPU is not in it);
- where the time goes, each part alone: reading the journal (`JournalTail`, scan + CRC),
  folding it (`OrderFold`: decode, the `Order` state machine, the rows), and writing the
  already folded batches with `store.apply` (the SQL, with the values conversion and, for
  SQLite, the hop to the writer thread);
- reference: the same rows (those `OrderFold` produces, in journal order) with the same
  statements, one statement committed per row: sqlite3 in autocommit mode with the store's
  PRAGMAs (WAL, synchronous=NORMAL) on the event loop's thread, and asyncpg `execute` per
  row in autocommit mode. Values are converted before the clock starts and no high-water
  mark is kept, which favours the reference.

Run: `.venv/bin/python -m bench.store_projector` (about 1 minute).
"""

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import os
import pstats
import secrets
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from bench.common import (
    LoopName,
    Target,
    add_loop_argument,
    emit,
    figure,
    filesystem_of,
    median,
    quiet_logging,
    record,
    result_name,
    run,
)
from bench.intake import postgres_settings
from bench.replay import deep_quote, engine_config, market_order, settle
from veloz.journal.framing import EntryType, Record
from veloz.journal.tail import JournalTail
from veloz.model.enums import OrderSide, OrderStatus
from veloz.persistence import queries
from veloz.persistence.columns import (
    fill_values,
    mode_values,
    order_values,
)
from veloz.persistence.postgres import PostgresStore
from veloz.persistence.projector import OrderFold, ProjectorConfig, ProjectorStats, rebuild
from veloz.persistence.sqlite import SqliteStore
from veloz.persistence.store import HistoryStore, ProjectionBatch, Store
from veloz.persistence.timefmt import sqlite_text, utc_datetime
from veloz.runtime.client import LocalEngineClient
from veloz.runtime.live import LiveEngine

_S = TypeVar("_S", bound=Store)

NAME = "store_projector"
DIALECTS = ("sqlite", "postgres")
TARGETS = (
    Target("ratio_sqlite", ">=", 10.0),
    Target("ratio_postgres", ">=", 10.0),
)
BATCH_ENTRIES = ProjectorConfig().batch_entries
Statement = tuple[str, tuple[Any, ...]]  # SQL and its values: one row written


# -- building the journal ----------------------------------------------------------------


async def build_journal(directory: Path, orders: int, concurrency: int) -> float:
    """A real engine fills `orders` MARKET orders (BUY/SELL alternately) and stops cleanly;
    returns the seconds it took."""
    started = time.perf_counter()
    engine = LiveEngine(engine_config(directory, sync=False, max_files=100_000))
    await engine.start()
    engine.market.on_data(deep_quote())
    client = LocalEngineClient(engine)
    commands = (market_order(OrderSide.BUY), market_order(OrderSide.SELL))
    remaining = iter(range(orders))

    async def submitter() -> None:
        for number in remaining:
            placed = await client.submit_order(commands[number % 2])
            assert placed.order.status is not OrderStatus.REJECTED, placed

    await asyncio.gather(*(submitter() for _ in range(concurrency)))
    await settle(engine)
    await engine.stop()
    return time.perf_counter() - started


def read_journal(directory: Path) -> list[list[Record]]:
    """Every record, in the projector's batches (what `Projector` reads per step)."""
    tail = JournalTail(directory)
    batches: list[list[Record]] = []
    after = 0
    while True:
        read = tail.read(after, None, BATCH_ENTRIES)
        if not read.records:
            return batches
        batches.append(read.records)
        after = read.records[-1].seq


def fold_journal(batches: list[list[Record]]) -> list[ProjectionBatch]:
    fold = OrderFold([], ProjectorStats())
    return [fold.fold(records) for records in batches]


# -- the rows, as the projector writes them ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Statements:
    """One dialect's statements (the stores' own, from `queries`) and value conversions."""

    order: str
    fill: str
    mode: str
    dec: Callable[[Decimal], Any]
    time: Callable[[int], Any]


def _same(value: Decimal) -> Decimal:
    return value


def statements(dialect: str) -> Statements:
    mark = queries.qmark if dialect == "sqlite" else queries.dollar
    return Statements(
        order=queries.upsert_order(mark),
        fill=queries.insert_fill(mark),
        mode=queries.insert_mode_change(mark),
        dec=str if dialect == "sqlite" else _same,
        time=sqlite_text if dialect == "sqlite" else utc_datetime,
    )


def row_statements(batches: list[ProjectionBatch], dialect: str) -> list[Statement]:
    """(statement, values) for every row the projector writes, in journal order."""
    s = statements(dialect)
    rows: list[tuple[int, str, tuple[Any, ...]]] = []
    for batch in batches:
        rows += [(r.journal_seq, s.order, order_values(r, s.dec, s.time)) for r in batch.orders]
        rows += [(r.journal_seq, s.fill, fill_values(r, s.dec, s.time)) for r in batch.fills]
        rows += [(r.journal_seq, s.mode, mode_values(r, s.time)) for r in batch.mode_changes]
    rows.sort(key=lambda row: row[0])
    return [(sql, values) for _, sql, values in rows]


def convert(batches: list[ProjectionBatch], dialect: str) -> int:
    """Convert every row to its column values as the store's `apply` does; the count."""
    s = statements(dialect)
    count = 0
    for batch in batches:
        orders = [order_values(r, s.dec, s.time) for r in batch.orders]
        fills = [fill_values(r, s.dec, s.time) for r in batch.fills]
        modes = [mode_values(r, s.time) for r in batch.mode_changes]
        count += len(orders) + len(fills) + len(modes)
    return count


def rows_written(batches: list[ProjectionBatch]) -> int:
    return sum(len(b.orders) + len(b.fills) + len(b.mode_changes) for b in batches)


# -- stores ------------------------------------------------------------------------------


@contextlib.contextmanager
def sqlite_file(parent: Path) -> Iterator[Path]:
    """A new SQLite file name under `parent`; the file and its WAL are removed afterwards."""
    path = parent / f"store-{secrets.token_hex(4)}.sqlite"
    try:
        yield path
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def migrated(store: _S) -> AsyncIterator[_S]:
    """`store` connected and migrated, closed afterwards."""
    await store.connect()
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()


def sqlite_store(path: Path) -> contextlib.AbstractAsyncContextManager[SqliteStore]:
    return migrated(SqliteStore(str(path), time.time_ns))


def postgres_store(url: str) -> contextlib.AbstractAsyncContextManager[PostgresStore]:
    return migrated(PostgresStore(url, time.time_ns))


@contextlib.asynccontextmanager
async def scratch_database(server: str) -> AsyncIterator[str]:
    """A new database on the server (its URL), dropped WITH (FORCE) afterwards."""
    name = f"veloz_bench_{os.getpid()}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(f"{server}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{server}/{name}"
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


# -- what is timed -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RebuildRun:
    seconds: float
    cpu_seconds: float
    entries: int
    batches: int
    rows: dict[str, int]


@contextlib.contextmanager
def clock() -> Iterator[list[float]]:
    """[wall seconds, process CPU seconds] of the block, after collecting earlier garbage."""
    gc.collect()
    spent: list[float] = []
    wall, cpu = time.perf_counter(), time.process_time()
    yield spent
    spent += [time.perf_counter() - wall, time.process_time() - cpu]


async def time_rebuild(store: HistoryStore, journal: Path) -> RebuildRun:
    with clock() as spent:
        stats = await rebuild(store, journal)
    counts = await store.table_counts()
    return RebuildRun(
        seconds=spent[0],
        cpu_seconds=spent[1],
        entries=stats.projected_entries,
        batches=stats.batches,
        rows={table: counts[table] for table in ("orders", "fills", "mode_changes")},
    )


async def time_apply(store: HistoryStore, batches: list[ProjectionBatch]) -> float:
    """The SQL alone: the already folded batches written with the store's `apply`."""
    with clock() as spent:
        for batch in batches:
            await store.apply(batch)
    return spent[0]


def sqlite_per_row(path: Path, rows: list[Statement]) -> float:
    """One statement committed per row (autocommit), the store's PRAGMAs; seconds."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        with clock() as spent:
            for sql, values in rows:
                conn.execute(sql, values)
        return spent[0]
    finally:
        conn.close()


async def postgres_per_row(url: str, rows: list[Statement]) -> float:
    """One asyncpg `execute` per row in autocommit mode (each its own transaction, its
    prepared statement cached by asyncpg); seconds."""
    conn = await asyncpg.connect(url)
    try:
        with clock() as spent:
            for sql, values in rows:
                await conn.execute(sql, *values)
        return spent[0]
    finally:
        await conn.close()


# -- one run -------------------------------------------------------------------------------


@dataclass(slots=True)
class Options:
    directory: Path
    keep: bool
    orders: int
    concurrency: int
    runs: int
    sqlite_sample: int
    pg_sample: int
    server: str
    postgres: bool
    profile: bool


@dataclass(slots=True)
class Journal:
    """The built journal, read and folded once (not timed) for the references."""

    directory: Path
    batches: list[ProjectionBatch]
    entries: int
    types: dict[str, int]
    rows: int
    statements: dict[str, list[Statement]] = field(default_factory=dict)


def sample_of(rows: list[Statement], size: int) -> list[Statement]:
    return rows if size <= 0 else rows[:size]


async def sqlite_run(options: Options, journal: Journal) -> dict[str, float]:
    scratch = options.directory / "stores"
    with sqlite_file(scratch) as path:
        async with sqlite_store(path) as store:
            rebuilt = await time_rebuild(store, journal.directory)
    with sqlite_file(scratch) as path:
        async with sqlite_store(path) as store:
            apply_s = await time_apply(store, journal.batches)
    rows = sample_of(journal.statements["sqlite"], options.sqlite_sample)
    with sqlite_file(scratch) as path:
        async with sqlite_store(path):
            pass  # the schema; the reference opens its own connection
        per_row_s = sqlite_per_row(path, rows)
    return figures_of(
        "sqlite", journal, rebuilt, apply_s=apply_s, per_row_count=len(rows), per_row_s=per_row_s
    )


async def postgres_run(options: Options, journal: Journal) -> dict[str, float]:
    rows = sample_of(journal.statements["postgres"], options.pg_sample)
    async with scratch_database(options.server) as url, postgres_store(url) as store:
        rebuilt = await time_rebuild(store, journal.directory)
        await store.reset_projection()  # TRUNCATE: fresh files, no dead rows
        apply_s = await time_apply(store, journal.batches)
        await store.reset_projection()
        per_row_s = await postgres_per_row(url, rows)
    return figures_of(
        "postgres", journal, rebuilt, apply_s=apply_s, per_row_count=len(rows), per_row_s=per_row_s
    )


def figures_of(
    dialect: str,
    journal: Journal,
    rebuilt: RebuildRun,
    *,
    apply_s: float,
    per_row_count: int,
    per_row_s: float,
) -> dict[str, float]:
    assert rebuilt.entries == journal.entries, (rebuilt.entries, journal.entries)
    projector = journal.rows / rebuilt.seconds
    per_row = per_row_count / per_row_s
    return {
        f"{dialect}_projector_rows_per_s": projector,
        f"{dialect}_projector_entries_per_s": rebuilt.entries / rebuilt.seconds,
        f"{dialect}_projector_seconds": rebuilt.seconds,
        f"{dialect}_projector_cpu_us_per_entry": rebuilt.cpu_seconds / rebuilt.entries * 1e6,
        f"{dialect}_projector_batches": rebuilt.batches,
        f"{dialect}_stored_rows": sum(rebuilt.rows.values()),
        f"{dialect}_apply_rows_per_s": journal.rows / apply_s,
        f"{dialect}_apply_seconds": apply_s,
        f"{dialect}_per_row_rows_per_s": per_row,
        f"{dialect}_per_row_us": 1e6 / per_row,
        f"{dialect}_per_row_count": per_row_count,
        f"ratio_{dialect}": projector / per_row,
    }


def parts_run(journal: Journal) -> dict[str, float]:
    """Reading and folding the journal, each alone (the projector's CPU before the SQL),
    and the values conversion each store's `apply` does before its SQL."""
    with clock() as read_spent:
        records = read_journal(journal.directory)
    with clock() as fold_spent:
        fold_journal(records)
    parts = {
        "read_seconds": read_spent[0],
        "read_entries_per_s": journal.entries / read_spent[0],
        "fold_seconds": fold_spent[0],
        "fold_entries_per_s": journal.entries / fold_spent[0],
    }
    for dialect in DIALECTS:
        with clock() as spent:
            rows = convert(journal.batches, dialect)
        parts[f"{dialect}_convert_us_per_row"] = spent[0] / rows * 1e6
    return parts


async def one_run(options: Options, journal: Journal, number: int) -> dict[str, float]:
    result = parts_run(journal)
    result.update(await sqlite_run(options, journal))
    if options.postgres:
        result.update(await postgres_run(options, journal))
    for key, value in result.items():
        emit(NAME, key, value, unit_of(key), run=number)
    return result


# -- the bench -------------------------------------------------------------------------------


async def prepare(options: Options) -> tuple[Journal, float]:
    journal_dir = options.directory / "journal"
    build_s = await build_journal(journal_dir, options.orders, options.concurrency)
    records = read_journal(journal_dir)
    batches = fold_journal(records)
    types = Counter(EntryType(r.entry_type).name for batch in records for r in batch)
    journal = Journal(
        directory=journal_dir,
        batches=batches,
        entries=sum(types.values()),
        types=dict(types),
        rows=rows_written(batches),
    )
    journal.statements = {dialect: row_statements(batches, dialect) for dialect in DIALECTS}
    return journal, build_s


async def bench(options: Options) -> dict[str, Any]:
    journal, build_s = await prepare(options)
    emit(NAME, "build_seconds", build_s, "s", entries=journal.entries, rows=journal.rows)
    result: dict[str, Any] = {"journal": journal, "build_seconds": build_s, "runs": []}
    if options.postgres:
        result["postgres_settings"] = await postgres_settings(f"{options.server}/postgres")
    if options.profile:
        await profile(options, journal)
    for number in range(1, options.runs + 1):
        result["runs"].append(await one_run(options, journal, number))
    return result


async def profile(options: Options, journal: Journal) -> None:
    """cProfile of one rebuild per dialect, to stderr. cProfile sees the event loop thread
    only: reading and folding, which the projector runs in a worker thread, do not show
    (`read_entries_per_s` and `fold_entries_per_s` time them alone)."""
    profiled: list[tuple[str, cProfile.Profile]] = []
    with sqlite_file(options.directory / "stores") as path:
        async with sqlite_store(path) as store:
            with cProfile.Profile() as profiler:
                await rebuild(store, journal.directory)
        profiled.append(("sqlite", profiler))
    if options.postgres:
        async with scratch_database(options.server) as url, postgres_store(url) as store:
            with cProfile.Profile() as profiler:
                await rebuild(store, journal.directory)
            profiled.append(("postgres", profiler))
    for dialect, profiler in profiled:
        out = io.StringIO()
        out.write(f"# cProfile of rebuild on {dialect}: {journal.entries} entries\n")
        for sort in ("cumulative", "tottime"):
            pstats.Stats(profiler, stream=out).sort_stats(sort).print_stats(25)
        print(out.getvalue(), file=sys.stderr)


UNITS = {
    "rows_per_s": "rows/s",
    "entries_per_s": "entries/s",
    "seconds": "s",
    "us_per_entry": "us",
    "us_per_row": "us",
    "per_row_us": "us",
    "batches": "batches",
    "rows": "rows",
    "count": "rows",
}


def unit_of(key: str) -> str:
    if key.startswith("ratio_"):
        return "x"
    return next((unit for end, unit in UNITS.items() if key.endswith(end)), "")


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    journal: Journal = result["journal"]
    figures: dict[str, Any] = {
        "journal_entries": figure(journal.entries, "entries", types=journal.types),
        "projected_rows": figure(journal.rows, "rows"),
        "build_seconds": figure(result["build_seconds"], "s"),
    }
    runs: list[dict[str, float]] = result["runs"]
    for key in runs[0]:
        values = [r[key] for r in runs]
        figures[key] = figure(median(values), unit_of(key), values)
    # Where the projector's time goes: each part alone, as a share of the whole rebuild.
    for dialect in DIALECTS:
        if f"{dialect}_projector_seconds" not in figures:
            continue
        whole = figures[f"{dialect}_projector_seconds"]["value"]
        shares = {
            part: round(figures[f"{part}_seconds"]["value"] / whole, 3)
            for part in ("read", "fold", f"{dialect}_apply")
        }
        figures[f"{dialect}_time_shares"] = figure(sum(shares.values()), "fraction", parts=shares)
    for key, value in figures.items():
        emit(NAME, f"median_{key}", value["value"], value["unit"])
    return figures


def notes_for(options: Options, result: dict[str, Any], figures: dict[str, Any]) -> str:
    journal: Journal = result["journal"]
    disk = filesystem_of(options.directory)
    pg = result.get("postgres_settings", {})
    return (
        f"Journal built once by a real LiveEngine (sync=False, zero-latency sim venue, one deep "
        f"quote): {options.orders} MARKET IOC orders through EngineClient.submit_order, "
        f"BUY/SELL alternately, {options.concurrency} submitters; {journal.entries} entries "
        f"{journal.types}; the projector writes {journal.rows} rows (an order is upserted once "
        f"in every batch it changes in, so orders straddling a batch boundary count twice; "
        f"the tables end with {count(figures, 'sqlite_stored_rows')} rows). "
        f"Projector = `rebuild(store, dir)` "
        f"on a fresh migrated store (new SQLite file; new PostgreSQL database, dropped WITH "
        f"(FORCE) after), batches of {BATCH_ENTRIES} entries, one transaction each; rows/s = "
        f"rows written / rebuild seconds. CPU per entry = process_time over the rebuild "
        f"(all threads of this process, not the PostgreSQL server). Parts alone: read = "
        f"JournalTail (scan + CRC), fold = OrderFold (decode + Order state machine + rows), "
        f"apply = store.apply of the pre-folded batches (SQL + value conversion); "
        f"*_time_shares divides each by the rebuild time. Reference = the same rows in "
        f"journal order with the stores' own statements, one committed per row: sqlite3 "
        f"autocommit, WAL + synchronous=NORMAL (a commit does not fsync in that mode; only "
        f"checkpoints do), on the loop thread without the store's writer-thread hop; asyncpg "
        f"`execute` per row in autocommit on one connection. Reference sample: "
        f"{count(figures, 'sqlite_per_row_count')} rows (SQLite), "
        f"{count(figures, 'postgres_per_row_count')} rows (PostgreSQL), the "
        f"first in journal order into empty tables; values converted before timing and no "
        f"high-water mark kept, which favours the reference. Files in {disk['path']} "
        f"({disk['device']} {disk['fs_type']}); PostgreSQL {options.server} with {pg}. "
        + breakdown(figures, journal)
    )


def count(figures: dict[str, Any], key: str) -> str:
    return f"{figures[key]['value']:.0f}" if key in figures else "no"


def breakdown(figures: dict[str, Any], journal: Journal) -> str:
    """Where the projector's time goes, from this run's medians, and why a ratio target
    is missed when it is."""

    def value(key: str) -> float:
        return float(figures[key]["value"])

    read_us = 1e6 / value("read_entries_per_s")
    fold_us = 1e6 / value("fold_entries_per_s")
    rows_per_entry = journal.rows / journal.entries
    text = (
        f"Where the time goes (medians): reading {read_us:.1f} us/entry and folding "
        f"{fold_us:.1f} us/entry (the same for both dialects; {rows_per_entry:.2f} rows per "
        f"entry here), then per row written:"
    )
    for dialect in DIALECTS:
        if f"ratio_{dialect}" not in figures:
            continue
        total_us = 1e6 / value(f"{dialect}_projector_rows_per_s")
        convert_us = value(f"{dialect}_convert_us_per_row")
        sql_us = 1e6 / value(f"{dialect}_apply_rows_per_s") - convert_us
        python_us = (read_us + fold_us) / rows_per_entry
        per_row_us = value(f"{dialect}_per_row_us")
        text += (
            f" {dialect}: the projector takes {total_us:.1f} us/row = reading and folding "
            f"{python_us:.1f} + value conversion {convert_us:.1f} + SQL {sql_us:.1f} (the "
            f"batched apply minus its conversion), against {per_row_us:.1f} us per "
            f"single-row commit;"
        )
        if value(f"ratio_{dialect}") < TARGETS[0].threshold:
            budget = per_row_us / 10
            parts = {"reading and folding": python_us, "conversion": convert_us, "SQL": sql_us}
            over = [name for name, us in parts.items() if us > budget] or ["only their sum"]
            text += f" 10x needs <= {budget:.1f} us/row, exceeded by {', '.join(over)};"
    return text + (
        " the projector reads and folds the next batch (in a worker thread) while the last one"
        " is written; a time share above 1 is that overlap, which the GIL limits when the"
        " write is Python work too (SQLite's executemany) and allows while the database works"
        " (PostgreSQL)."
    )


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Options]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_loop_argument(parser)
    parser.add_argument("--orders", type=int, default=20_000, help="orders in the journal")
    parser.add_argument("--concurrency", type=int, default=256, help="submitters (build)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--sqlite-sample",
        type=int,
        default=0,
        help="rows for the SQLite per-row reference (0: all)",
    )
    parser.add_argument(
        "--pg-sample", type=int, default=5_000, help="rows for the PostgreSQL per-row reference"
    )
    parser.add_argument(
        "--server",
        default="postgresql://postgres@127.0.0.1:5432",
        help="PostgreSQL server URL without a database (scratch databases are made there)",
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temp directory")
    parser.add_argument("--keep", action="store_true", help="keep the journal")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile one rebuild each (loop thread)"
    )
    args = parser.parse_args(argv)
    parent = (args.dir or Path(tempfile.gettempdir())).resolve()
    options = Options(
        directory=Path(tempfile.mkdtemp(prefix="veloz-projector-", dir=parent)),
        keep=args.keep,
        orders=args.orders,
        concurrency=args.concurrency,
        runs=args.runs,
        sqlite_sample=args.sqlite_sample,
        pg_sample=args.pg_sample,
        server=args.server.rstrip("/"),
        postgres=not args.no_postgres,
        profile=args.profile,
    )
    return args, options


def main(argv: list[str] | None = None) -> None:
    args, options = parse_args(argv)
    loop: LoopName = args.loop
    quiet_logging()
    emit(NAME, "directory", 0, "", path=str(options.directory))
    try:
        started = time.perf_counter()
        result = run(lambda: bench(options), loop)
        figures = summarise(result)
        path = record(
            result_name(NAME, loop),
            figures,
            notes_for(options, result, figures),
            targets=TARGETS if options.postgres else TARGETS[:1],
            loop=loop,
            extra={"wall_seconds": round(time.perf_counter() - started, 1)},
        )
        emit(NAME, "recorded", 0, "", path=str(path))
    finally:
        if not options.keep:
            with contextlib.suppress(OSError):
                shutil.rmtree(options.directory)


if __name__ == "__main__":
    main()
