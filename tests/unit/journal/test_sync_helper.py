"""The group commit's fdatasync runs in the sync helper process: batches become durable
through it, its failure fails the journal, its loss falls back to the writer's thread with
nothing lost, and it outlives neither its engine nor its journal."""

import asyncio
import logging
import os
import signal
from pathlib import Path

import pytest

from veloz.journal.framing import EntryType, Record
from veloz.journal.recovery import recover
from veloz.journal.segments import CURRENT_NAME
from veloz.journal.stats import JournalStats
from veloz.journal.sync_helper import SyncHelper
from veloz.journal.writer import (
    INLINE_WRITE_BYTES,
    JournalConfig,
    JournalUnavailable,
    JournalWriter,
)


def _no_checkpoint(_record: Record) -> bool:
    return False  # these journals hold none


async def _open(directory: Path, stats: JournalStats, **config: object) -> JournalWriter:
    _, writer = recover(
        JournalConfig(directory=str(directory), **config),  # type: ignore[arg-type]
        stats,
        _no_checkpoint,
    )
    writer.start()
    return writer


async def _write(writer: JournalWriter, payloads: list[bytes]) -> None:
    appended = [writer.append(EntryType.OrderNew, p, 0) for p in payloads]
    await asyncio.gather(*(durable for _, durable in appended))


async def _payloads(directory: Path) -> list[bytes]:
    recovery, writer = recover(
        JournalConfig(directory=str(directory)), JournalStats(), _no_checkpoint
    )
    await writer.close()  # never started: releases the directory
    return [r.payload for r in recovery.entries() if r.entry_type == EntryType.OrderNew]


def _alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return finished == 0


def _helper_pid(writer: JournalWriter) -> int:
    helper = writer._sync_helper
    assert helper is not None, "no sync helper"
    return helper.pid


async def test_batches_are_made_durable_by_the_helper_process(tmp_path):
    stats = JournalStats()
    writer = await _open(tmp_path / "wal", stats)
    pid = _helper_pid(writer)
    assert pid != os.getpid() and _alive(pid)
    await _write(writer, [b"a", b"b"])
    await _write(writer, [b"c"])
    assert stats.fsync_seconds.count == 2 and stats.entries_written == 3
    await writer.close()
    assert not _alive(pid), "closing the journal ends its helper"
    assert await _payloads(tmp_path / "wal") == [b"a", b"b", b"c"]


async def test_rotations_and_big_batches_are_synced_too(tmp_path):
    stats = JournalStats()
    writer = await _open(tmp_path / "wal", stats, max_segment_bytes=4096)
    small = [f"e{i:04d}".encode() * 20 for i in range(200)]  # rotates several times
    for start in range(0, len(small), 10):
        await _write(writer, small[start : start + 10])
    big = [b"x" * (INLINE_WRITE_BYTES // 4)] * 5  # written on the thread, synced by the helper
    await _write(writer, big)
    assert stats.rotations >= 5 and writer._generation == stats.rotations
    assert stats.fsync_seconds.count == 21
    await writer.close()
    assert await _payloads(tmp_path / "wal") == small + big


async def test_a_lost_helper_falls_back_to_the_thread_and_nothing_is_lost(tmp_path, caplog):
    stats = JournalStats()
    writer = await _open(tmp_path / "wal", stats)
    await _write(writer, [b"before"])
    os.kill(_helper_pid(writer), signal.SIGKILL)
    with caplog.at_level(logging.ERROR, logger="veloz.journal.writer"):
        await _write(writer, [b"after-1", b"after-2"])
        await _write(writer, [b"after-3"])
    assert writer._sync_helper is None and writer.failure is None
    assert "journal sync helper lost" in caplog.text
    assert stats.fsync_seconds.count == 3
    await writer.close()
    assert await _payloads(tmp_path / "wal") == [b"before", b"after-1", b"after-2", b"after-3"]


async def test_a_failed_sync_fails_the_journal_and_acknowledges_nothing(tmp_path):
    writer = await _open(tmp_path / "wal", JournalStats())
    # The helper opens the segment at its first sync: gone, the sync cannot be done.
    (tmp_path / "wal" / CURRENT_NAME).rename(tmp_path / "elsewhere.wal")
    _, durable = writer.append(EntryType.OrderNew, b"lost", 0)
    with pytest.raises(JournalUnavailable, match="No such file"):
        await durable
    with pytest.raises(JournalUnavailable):
        writer.append(EntryType.OrderNew, b"refused", 0)
    await writer.close()


async def test_the_helper_answers_an_error_for_a_segment_it_cannot_open(tmp_path):
    helper = SyncHelper(tmp_path)  # no segment in it
    try:
        with pytest.raises(FileNotFoundError):
            await helper.sync(0)
    finally:
        helper.close()


async def test_the_helper_ignores_stop_signals_and_exits_when_its_input_closes(tmp_path):
    (tmp_path / CURRENT_NAME).write_bytes(b"")
    helper = SyncHelper(tmp_path)
    await helper.sync(0)  # started: its signal handlers are set
    for stop in (signal.SIGINT, signal.SIGTERM):
        os.kill(helper.pid, stop)
    assert await helper.sync(0) >= 0  # still there, still syncing
    # What the engine's death does (even by SIGKILL): the helper's input closes.
    process = helper._process
    assert process.stdin is not None
    process.stdin.close()
    assert await asyncio.to_thread(process.wait, 5) == 0
    helper.close()
