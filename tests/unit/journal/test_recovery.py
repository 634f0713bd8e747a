"""Writer and recovery against real files: group commit, rotation, retention, torn tails,
damage in the middle, missing segments, strangers in the directory, sequence continuity."""

import asyncio
import errno
import os
from pathlib import Path

import pytest

from veloz.journal.framing import EntryType, Record, encode_record
from veloz.journal.recovery import recover
from veloz.journal.segments import CURRENT_NAME, JournalLocked, list_segments
from veloz.journal.stats import JournalStats
from veloz.journal.writer import JournalConfig, JournalUnavailable, JournalWriter


def _accept(record: Record) -> bool:
    return record.payload.startswith(b"cp")


def _config(tmp_path: Path, **overrides: object) -> JournalConfig:
    values: dict[str, object] = {"directory": str(tmp_path / "wal")} | overrides
    return JournalConfig(**values)  # type: ignore[arg-type]


async def _open(config: JournalConfig, stats: JournalStats | None = None):
    recovery, writer = recover(config, stats or JournalStats(), _accept)
    writer.start()
    return recovery, writer


async def _write(
    writer: JournalWriter, payloads: list[bytes], kind=EntryType.OrderNew
) -> list[int]:
    appended = [writer.append(kind, p, 0) for p in payloads]
    await asyncio.gather(*(future for _, future in appended))
    return [seq for seq, _ in appended]


async def test_appends_get_consecutive_seqs_and_are_replayed(tmp_path):
    _, writer = await _open(_config(tmp_path))
    seqs = await _write(writer, [f"e{i}".encode() for i in range(10)])
    await writer.close()
    assert seqs == list(range(1, 11))
    recovery, writer = await _open(_config(tmp_path))
    assert [r.payload for r in recovery.entries()] == [f"e{i}".encode() for i in range(10)]
    assert recovery.next_seq == 11 and not recovery.damaged
    await writer.close()


async def test_concurrent_appends_share_fsyncs(tmp_path):
    stats = JournalStats()
    _, writer = await _open(_config(tmp_path), stats)

    async def submitter(n: int) -> None:
        for i in range(50):
            await writer.append_durable(EntryType.OrderNew, f"{n}-{i}".encode(), 0)

    await asyncio.gather(*(submitter(n) for n in range(40)))
    await writer.close()
    assert stats.entries_written == 2000
    # 40 concurrent submitters: far fewer syncs than entries.
    assert stats.fsync_seconds.count < 2000 / 5


async def test_sequence_is_never_reused_after_restart(tmp_path):
    config = _config(tmp_path)
    for round_ in range(3):
        recovery, writer = await _open(config)
        assert recovery.next_seq == round_ * 5 + 1
        assert await _write(writer, [b"x"] * 5) == list(range(round_ * 5 + 1, round_ * 5 + 6))
        await writer.close()


async def test_rotation_names_segments_by_first_seq_and_starts_with_rotation(tmp_path):
    config = _config(tmp_path, max_segment_bytes=400, max_files=100)
    stats = JournalStats()
    _, writer = await _open(config, stats)
    await _write(writer, [b"p" * 60] * 20)
    await writer.close()
    segments, strangers = list_segments(Path(config.directory))
    assert not strangers and stats.rotations == len(segments) - 1 > 2
    recovery, writer = await _open(config)
    entries = list(recovery.entries())
    await writer.close()
    rotations = [r for r in entries if r.entry_type == EntryType.Rotation]
    assert len(rotations) == stats.rotations
    for segment in segments[1:-1]:
        assert segment.first_seq is not None
        data = segment.path.read_bytes()
        assert data.startswith(encode_record(EntryType.Rotation, segment.first_seq, 0, b"")[:4])
    assert [r.seq for r in entries] == list(range(1, len(entries) + 1))


async def test_retention_keeps_max_files_but_never_what_replay_needs(tmp_path):
    config = _config(tmp_path, max_segment_bytes=300, max_files=2)
    _, writer = await _open(config)
    # No checkpoint yet: everything is needed, nothing may be deleted.
    await _write(writer, [b"p" * 60] * 30)
    assert len(list_segments(Path(config.directory))[0]) > 4
    (cp_seq,) = await _write(writer, [b"cp-state"], kind=EntryType.Checkpoint)
    await _write(writer, [b"p" * 60] * 10)
    await writer.close()
    segments, _ = list_segments(Path(config.directory))
    completed = [s.first_seq for s in segments if s.first_seq is not None]
    holder = max(seq for seq in completed if seq <= cp_seq)
    needed = [seq for seq in completed if seq >= holder]
    older = [seq for seq in completed if seq < holder]
    # Older segments go first, down to max_files; the ones replay needs always stay.
    assert len(needed) >= 2 and older == []
    recovery, writer = await _open(config)
    assert recovery.checkpoint is not None and recovery.checkpoint.payload == b"cp-state"
    assert len(list(recovery.entries())) >= 10 and not recovery.damaged
    await writer.close()


async def test_replay_starts_after_the_newest_usable_checkpoint(tmp_path):
    config = _config(tmp_path)
    _, writer = await _open(config)
    await _write(writer, [b"a", b"b"])
    await _write(writer, [b"cp-1"], kind=EntryType.Checkpoint)
    await _write(writer, [b"c"])
    await _write(writer, [b"cp-2"], kind=EntryType.Checkpoint)
    await _write(writer, [b"d"])
    await _write(writer, [b"unreadable"], kind=EntryType.Checkpoint)
    await _write(writer, [b"e"])
    await writer.close()
    recovery, writer = await _open(config)
    assert recovery.checkpoint is not None and recovery.checkpoint.payload == b"cp-2"
    assert [r.payload for r in recovery.entries()] == [b"d", b"unreadable", b"e"]
    await writer.close()


async def test_torn_tail_is_truncated_and_writing_resumes(tmp_path):
    config = _config(tmp_path)
    _, writer = await _open(config)
    await _write(writer, [b"one", b"two", b"three"])
    await writer.close()
    current = Path(config.directory) / CURRENT_NAME
    with current.open("ab") as f:
        f.write(encode_record(EntryType.OrderNew, 4, 0, b"four")[:-2])
    stats = JournalStats()
    recovery, writer = await _open(config, stats)
    assert [r.payload for r in recovery.entries()] == [b"one", b"two", b"three"]
    assert not recovery.damaged and stats.torn_tail_bytes > 0 and stats.corrupted_entries == 0
    assert await _write(writer, [b"four"]) == [4]
    await writer.close()
    recovery, writer = await _open(config)
    assert [r.payload for r in recovery.entries()][-1] == b"four"
    await writer.close()


async def test_bit_flip_in_the_middle_is_counted_quarantined_and_reported(tmp_path):
    config = _config(tmp_path)
    _, writer = await _open(config)
    await _write(writer, [f"entry-{i}".encode() for i in range(10)])
    await writer.close()
    current = Path(config.directory) / CURRENT_NAME
    data = bytearray(current.read_bytes())
    data[len(data) // 2] ^= 0xFF
    current.write_bytes(bytes(data))
    stats = JournalStats()
    recovery, writer = await _open(config, stats)
    replayed = list(recovery.entries())
    await writer.close()
    assert recovery.damaged and stats.corrupted_entries >= 1
    assert len(replayed) == 9  # one record lost, the rest kept, none invented
    assert recovery.quarantined and recovery.quarantined[0].read_bytes() == bytes(data)
    assert any("gap" in p for p in recovery.problems)


async def test_missing_middle_segment_is_a_gap(tmp_path):
    config = _config(tmp_path, max_segment_bytes=300, max_files=100)
    _, writer = await _open(config)
    await _write(writer, [b"p" * 60] * 20)
    await writer.close()
    segments, _ = list_segments(Path(config.directory))
    segments[1].path.unlink()
    recovery, writer = await _open(config)
    list(recovery.entries())
    await writer.close()
    assert recovery.damaged and any("gap" in p for p in recovery.problems)


async def test_journal_without_its_beginning_or_a_checkpoint_is_damaged(tmp_path):
    config = _config(tmp_path, max_segment_bytes=300, max_files=100)
    _, writer = await _open(config)
    await _write(writer, [b"p" * 60] * 20)
    await writer.close()
    list_segments(Path(config.directory))[0][0].path.unlink()
    recovery, writer = await _open(config)
    await writer.close()
    assert recovery.damaged and "starts at sequence" in recovery.problems[0]


async def test_stranger_files_are_reported_and_left_alone(tmp_path):
    config = _config(tmp_path)
    directory = Path(config.directory)
    directory.mkdir(parents=True)
    (directory / "notes.txt").write_text("operator notes")
    (directory / "orders_12.wal").write_bytes(b"\x00" * 100)  # not a 16-digit name
    recovery, writer = await _open(config)
    await _write(writer, [b"x"])
    await writer.close()
    assert {p.name for p in recovery.strangers} == {"notes.txt", "orders_12.wal"}
    assert (directory / "notes.txt").read_text() == "operator notes"
    assert not recovery.damaged


async def test_a_second_writer_is_refused(tmp_path):
    config = _config(tmp_path)
    _, writer = await _open(config)
    with pytest.raises(JournalLocked, match="in use by another process"):
        recover(config, JournalStats(), _accept)
    await writer.close()


async def test_write_failure_fails_waiters_and_refuses_further_appends(tmp_path, monkeypatch):
    _, writer = await _open(_config(tmp_path))
    await _write(writer, [b"before"])
    real_write = os.write

    def disk_full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    _, durable = writer.append(EntryType.OrderNew, b"lost", 0)
    with pytest.raises(JournalUnavailable, match="No space left"):
        await durable
    with pytest.raises(JournalUnavailable):
        writer.append(EntryType.OrderNew, b"after", 0)
    monkeypatch.setattr(os, "write", real_write)
    await writer.close()
    recovery, writer = await _open(_config(tmp_path))
    assert [r.payload for r in recovery.entries()] == [b"before"]
    await writer.close()


async def test_unsynced_mode_acks_after_write_and_syncs_periodically(tmp_path):
    stats = JournalStats()
    _, writer = await _open(_config(tmp_path, sync=False, flush_interval_ms=10), stats)
    await _write(writer, [b"a", b"b"])
    assert stats.entries_written == 2
    for _ in range(100):
        if stats.fsync_seconds.count:
            break
        await asyncio.sleep(0.01)
    assert stats.fsync_seconds.count >= 1
    await writer.close()


async def test_a_cancelled_waiter_does_not_cancel_the_batch_for_others(tmp_path):
    _, writer = await _open(_config(tmp_path))
    _, durable = writer.append(EntryType.OrderNew, b"shared", 0)
    _, same_batch = writer.append(EntryType.OrderNew, b"shared-too", 0)
    assert durable is same_batch

    async def wait(future: asyncio.Future[None]) -> None:
        await future

    impatient = asyncio.create_task(wait(durable))
    patient = asyncio.create_task(wait(same_batch))
    await asyncio.sleep(0)
    impatient.cancel()
    assert durable.cancel() is False
    await patient  # the batch still completes for everyone else
    with pytest.raises(asyncio.CancelledError):
        await impatient
    await writer.close()
    recovery, writer = await _open(_config(tmp_path))
    assert [r.payload for r in recovery.entries()] == [b"shared", b"shared-too"]
    await writer.close()
