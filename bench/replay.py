"""P3: recovery, restart with a journal of at least 1,000,000 entries.

The journal is built the realistic way: a real `LiveEngine` (`JournalConfig(sync=False)` so
building is quick; default checkpoint interval and segment size) takes MARKET IOC orders,
BUY and SELL alternately against one deep quote, so every order journals `OrderNew`,
`OrderAccepted` and `OrderFilled` and the engine writes its checkpoints and rotates its
segments as it would in service. Retention is raised (`--max-files`) so that no segment
is deleted and the full replay below can start at sequence 1.

Figures (each the median of `--runs` runs, fresh `LiveEngine` each time, garbage collected
before each):
- restart to ready: `await engine.start()` on the built journal (scan the newest segments,
  decode the newest checkpoint, replay what follows it, restore the venue, reconcile);
- full replay: the same start with every checkpoint refused (`_accept_checkpoint` returns
  False, as the recovery tests do), so state is rebuilt from entry 1: entries/s from the
  engine's own replay counters (`replayed_entries / replay_seconds`) and the seconds;
- the journal itself: entries, bytes, segments, checkpoints.

Reference: the seeds' RTO is 5 minutes; the target is ready in <= 5 s and replay at
>= 500k entries/s. Files are read from the page cache (they were just written); `--cold`
also drops this journal's pages (posix_fadvise DONTNEED, this journal's files only) before
each start.

Run: `.venv/bin/python -m bench.replay` (builds in a temp dir on the /work disk and
removes it); `--keep` keeps the journal and `--reuse DIR` measures an existing one.
"""

import argparse
import asyncio
import contextlib
import gc
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

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
from veloz.engine.core import IN_FLIGHT
from veloz.execution.venues.sim import SimVenueConfig
from veloz.journal.framing import Record
from veloz.journal.recovery import scan_segment
from veloz.journal.segments import list_segments
from veloz.journal.verify import verify_directory
from veloz.journal.writer import JournalConfig
from veloz.market.sim import SimMarketConfig
from veloz.model.commands import SubmitOrder
from veloz.model.enums import OrderSide, OrderType, TimeInForce
from veloz.model.market import QuoteTick
from veloz.runtime.live import EngineConfig, LiveEngine

NAME = "replay"
SYMBOL = "BTCUSDT"
QTY = Decimal("0.001")
DEEP = Decimal(10**9)  # displayed size no burst of orders can exhaust
TARGETS = (
    Target("restart_to_ready_s", "<=", 5.0),
    Target("full_replay_entries_per_s", ">=", 500_000),
)


class FullReplayEngine(LiveEngine):
    """Ignores every checkpoint, so state is rebuilt from the first entry."""

    def _accept_checkpoint(self, record: Record) -> bool:
        return False


def engine_config(directory: Path, *, sync: bool, max_files: int) -> EngineConfig:
    """Defaults for the journal except sync and retention; a venue with balances deep
    enough that alternating BUY/SELL market orders never run short."""
    return EngineConfig(
        journal=JournalConfig(directory=str(directory), sync=sync, max_files=max_files),
        market=SimMarketConfig(symbols=(SYMBOL,), seed=7),
        venue=SimVenueConfig(
            latency_ms=0, starting_balances={"USDT": Decimal(10**12), "BTC": Decimal(10**6)}
        ),
        run_market=False,
    )


def deep_quote() -> QuoteTick:
    return QuoteTick(
        symbol=SYMBOL,
        bid=Decimal("50000"),
        ask=Decimal("50001"),
        bid_size=DEEP,
        ask_size=DEEP,
        ts_ns=1,
    )


def market_order(side: OrderSide) -> SubmitOrder:
    return SubmitOrder(
        symbol=SYMBOL,
        side=side,
        qty=QTY,
        order_type=OrderType.MARKET,
        time_in_force=TimeInForce.IOC,
    )


# -- building the journal ----------------------------------------------------------------


async def build(directory: Path, entries: int, concurrency: int, max_files: int) -> float:
    """Drive a real engine until its journal holds at least `entries` entries; returns
    the seconds it took (start to stopped)."""
    started = time.perf_counter()
    engine = LiveEngine(engine_config(directory, sync=False, max_files=max_files))
    await engine.start()
    engine.market.on_data(deep_quote())
    orders = (market_order(OrderSide.BUY), market_order(OrderSide.SELL))
    journal = engine.journal
    assert journal is not None

    async def submitter(index: int) -> None:
        # ~3 entries per order; stop once the filled orders will reach the target.
        while journal.next_seq < entries + 3 * concurrency:
            index += 1
            await engine.submit(orders[index % 2])

    await asyncio.gather(*(submitter(i) for i in range(concurrency)))
    await settle(engine)
    await crash_stop(engine)
    return time.perf_counter() - started


async def settle(engine: LiveEngine) -> None:
    """Wait until no order is in flight and everything journaled is on disk."""
    # Reports settle orders within a few loop turns; polling (as LiveEngine.stop does) is enough.
    while engine.oms.with_status(IN_FLIGHT):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    assert engine.journal is not None
    await engine.journal.sync()


async def crash_stop(engine: LiveEngine) -> None:
    """Stop like a crash right after a quiet moment: everything written is on disk but no
    shutdown checkpoint is written, so a restart replays the entries after the newest
    periodic checkpoint (a clean `stop()` would leave none to replay). It also leaves the
    journal exactly as it was, so every timed start reads the same journal."""
    await engine.market.stop()
    await engine.execution.stop()
    await engine.venue.close()
    if engine.journal is not None:
        await engine.journal.close()


@dataclass(frozen=True, slots=True)
class JournalShape:
    entries: int
    bytes: int
    segments: int
    checkpoints: int
    checkpoint_bytes: int
    current_segment_bytes: int
    types: dict[str, int]
    gaps: int


def journal_shape(directory: Path) -> JournalShape:
    """What is on disk: counted by reading every record (not timed)."""
    report = verify_directory(directory)
    checkpoint_bytes = sum(cp.size for s in report.segments for cp in s.checkpoints)
    current = [s.segment.path for s in report.segments if s.segment.is_current]
    return JournalShape(
        entries=report.entries,
        bytes=report.bytes,
        segments=len(report.segments),
        checkpoints=report.types.get("Checkpoint", 0),
        checkpoint_bytes=checkpoint_bytes,
        current_segment_bytes=current[0].stat().st_size if current else 0,
        types=dict(report.types),
        gaps=len(report.gaps),
    )


def largest_segment_scan(directory: Path) -> float:
    """Seconds to read and scan the largest segment: what a restart must at least do when
    the crash comes just before a rotation (the current segment is then nearly full and is
    scanned whole before its newest checkpoint is used)."""
    segments, _ = list_segments(directory)
    largest = max(segments, key=lambda s: s.path.stat().st_size)
    started = time.perf_counter()
    scan_segment(largest)
    return time.perf_counter() - started


# -- measuring a start ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartRun:
    seconds: float  # await engine.start()
    replay_seconds: float  # the engine's own: open + scan + replay
    replayed_entries: int
    orders: int
    problems: int

    @property
    def entries_per_s(self) -> float:
        return self.replayed_entries / self.replay_seconds if self.replay_seconds else 0.0


def drop_cached_pages(directory: Path) -> None:
    """Ask the kernel to forget this journal's cached pages (these files only)."""
    segments, _ = list_segments(directory)
    for segment in segments:
        fd = os.open(segment.path, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


async def timed_start(engine_type: type[LiveEngine], config: EngineConfig, cold: bool) -> StartRun:
    """A fresh engine on the journal: time `start()`, then stop it without a checkpoint
    (not timed), leaving the journal as it found it."""
    gc.collect()
    if cold:
        drop_cached_pages(Path(config.journal.directory))
    engine = engine_type(config)
    started = time.perf_counter()
    await engine.start()
    seconds = time.perf_counter() - started
    assert engine.ready, engine.phase
    await crash_stop(engine)
    result = StartRun(
        seconds=seconds,
        replay_seconds=engine.journal_stats.replay_seconds,
        replayed_entries=engine.journal_stats.replayed_entries,
        orders=len(engine.oms),
        problems=len(engine.journal_problems),
    )
    return result


# -- the bench ----------------------------------------------------------------------------


@dataclass(slots=True)
class Options:
    directory: Path
    reuse: bool
    keep: bool
    entries: int
    concurrency: int
    max_files: int
    runs: int
    cold: bool


async def bench(options: Options) -> dict[str, Any]:
    """Build (unless reused), describe the journal, then the timed starts."""
    result: dict[str, Any] = {}
    if not options.reuse:
        seconds = await build(
            options.directory, options.entries, options.concurrency, options.max_files
        )
        result["build_seconds"] = seconds
        emit(NAME, "build_seconds", seconds, "s")
    result["shape"] = shape = journal_shape(options.directory)
    if shape.entries < options.entries and not options.reuse:
        emit(NAME, "warning_short_journal", shape.entries, "entries", wanted=options.entries)
    result["largest_segment_scan"] = [largest_segment_scan(options.directory) for _ in range(3)]
    config = engine_config(options.directory, sync=True, max_files=options.max_files)
    for number in range(1, options.runs + 1):
        for label, engine_type, cold in starts(options.cold):
            started = await timed_start(engine_type, config, cold)
            result.setdefault(label, []).append(started)
            emit(
                NAME,
                label,
                started.seconds,
                "s",
                run=number,
                replayed=started.replayed_entries,
                entries_per_s=round(started.entries_per_s),
                problems=started.problems,
            )
    return result


def starts(cold: bool) -> list[tuple[str, type[LiveEngine], bool]]:
    """Which starts each run measures: from the checkpoint, cold (optional), full replay."""
    kinds: list[tuple[str, type[LiveEngine], bool]] = [("restart", LiveEngine, False)]
    if cold:
        kinds.append(("restart_cold", LiveEngine, True))
    kinds.append(("full_replay", FullReplayEngine, False))
    return kinds


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    shape: JournalShape = result["shape"]
    figures: dict[str, Any] = {
        "journal_entries": figure(shape.entries, "entries"),
        "journal_bytes": figure(shape.bytes, "bytes"),
        "journal_segments": figure(shape.segments, "segments"),
        "journal_checkpoints": figure(shape.checkpoints, "checkpoints"),
        "journal_checkpoint_bytes": figure(shape.checkpoint_bytes, "bytes"),
        "current_segment_bytes": figure(shape.current_segment_bytes, "bytes"),
        "largest_segment_scan_s": figure(
            median(result["largest_segment_scan"]), "s", result["largest_segment_scan"]
        ),
    }
    if "build_seconds" in result:
        figures["build_seconds"] = figure(result["build_seconds"], "s")
    restarts: list[StartRun] = result["restart"]
    figures["restart_to_ready_s"] = figure(
        median(r.seconds for r in restarts),
        "s",
        [r.seconds for r in restarts],
        replayed_entries=restarts[0].replayed_entries,
    )
    if "restart_cold" in result:
        colds: list[StartRun] = result["restart_cold"]
        figures["restart_cold_s"] = figure(
            median(r.seconds for r in colds), "s", [r.seconds for r in colds]
        )
    fulls: list[StartRun] = result["full_replay"]
    figures["full_replay_entries_per_s"] = figure(
        median(r.entries_per_s for r in fulls), "entries/s", [r.entries_per_s for r in fulls]
    )
    figures["full_replay_seconds"] = figure(
        median(r.replay_seconds for r in fulls), "s", [r.replay_seconds for r in fulls]
    )
    figures["full_start_seconds"] = figure(
        median(r.seconds for r in fulls), "s", [r.seconds for r in fulls]
    )
    figures["full_replay_entries"] = figure(fulls[0].replayed_entries, "entries")
    for key, value in figures.items():
        emit(NAME, f"median_{key}", value["value"], value["unit"])
    return figures


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Options]:
    parser = argparse.ArgumentParser(description="P3: restart and full replay of a journal")
    add_loop_argument(parser)
    parser.add_argument("--reuse", type=Path, default=None, help="measure this journal")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the built journal")
    parser.add_argument("--keep", action="store_true", help="keep the built journal")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--max-files", type=int, default=100_000, help="retention (no deletes)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="also time starts with cold pages")
    args = parser.parse_args(argv)
    if args.reuse is not None:
        directory, reuse = args.reuse.resolve(), True
    else:
        parent = (args.dir or Path(tempfile.gettempdir())).resolve()
        directory, reuse = Path(tempfile.mkdtemp(prefix="veloz-replay-", dir=parent)), False
    options = Options(
        directory=directory,
        reuse=reuse,
        keep=args.keep or reuse,
        entries=args.entries,
        concurrency=args.concurrency,
        max_files=args.max_files,
        runs=args.runs,
        cold=args.cold,
    )
    return args, options


def notes_for(options: Options, result: dict[str, Any]) -> str:
    shape: JournalShape = result["shape"]
    disk = filesystem_of(options.directory)
    built = "reused" if options.reuse else "built by this run"
    return (
        f"Journal {built} in {disk['path']} ({disk['device']} {disk['fs_type']}): "
        f"{shape.entries} entries {shape.types}, {shape.gaps} sequence gaps. Restart = "
        "`await LiveEngine(config).start()` with run_market=False (checkpoint decode, replay "
        "after it, venue restore, reconcile, checkpoint if needed). Full replay refuses "
        "every checkpoint; entries/s is the engine's replayed_entries / replay_seconds "
        "(open + scan + CRC + decode + apply). Every start and stop appends a checkpoint, "
        "so a reused journal grows slightly. Page cache warm unless restart_cold_s."
    )


def main(argv: list[str] | None = None) -> None:
    args, options = parse_args(argv)
    loop: LoopName = args.loop
    quiet_logging()
    emit(NAME, "journal_directory", 0, "", path=str(options.directory))
    try:
        started = time.perf_counter()
        result = run(lambda: bench(options), loop)
        figures = summarise(result)
        path = record(
            result_name(NAME, loop),
            figures,
            notes_for(options, result),
            targets=TARGETS,
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
