"""`take_snapshot` against real journal files: a torn tail trimmed, a rotation and a
retention deletion racing the copy (retried, never torn), a journal that keeps changing
(bounded), and snapshots taken while a real engine takes orders and rotates."""

import asyncio
import json
import os
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.engine import engine_config, quote
from veloz.journal import snapshot as snapshot_module
from veloz.journal.framing import EntryType, Record, encode_record, scan
from veloz.journal.recovery import recover
from veloz.journal.segments import CURRENT_NAME, list_segments, segment_name
from veloz.journal.snapshot import SNAPSHOT_FILE, SnapshotError, take_snapshot
from veloz.journal.stats import JournalStats
from veloz.journal.verify import iterate_records, verify_directory
from veloz.journal.writer import JournalConfig
from veloz.model.commands import SubmitOrder
from veloz.model.enums import OrderSide
from veloz.runtime.live import LiveEngine


def _records(directory: Path) -> dict[int, bytes]:
    return {record.seq: record.payload for _, record in iterate_records(directory)}


async def _fill(directory: Path, entries: int, segment_bytes: int = 600) -> None:
    """`entries` entries, a checkpoint first, in small segments (several rotations)."""
    config = JournalConfig(directory=str(directory), max_segment_bytes=segment_bytes)
    _, writer = recover(config, JournalStats(), lambda record: True)
    writer.start()
    appended = [writer.append(EntryType.Checkpoint, b"cp", 1)]
    appended += [writer.append(EntryType.OrderNew, b"x" * 40, n) for n in range(entries)]
    await asyncio.gather(*(future for _, future in appended))
    await writer.close()


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    directory = tmp_path / "wal"
    asyncio.run(_fill(directory, 60))
    assert len(list_segments(directory)[0]) >= 4
    return directory


def _rotate(directory: Path) -> None:
    """What the writer does at a rotation: rename the current segment to its numbered
    name and start a new one with the next sequence."""
    data = (directory / CURRENT_NAME).read_bytes()
    records = [item for item in scan(data) if isinstance(item, Record)]
    os.rename(directory / CURRENT_NAME, directory / segment_name(records[0].seq))
    last = records[-1].seq
    (directory / CURRENT_NAME).write_bytes(
        encode_record(EntryType.Rotation, last + 1, 2, b"r")
        + encode_record(EntryType.OrderNew, last + 2, 2, b"after the rotation")
    )


def test_a_snapshot_is_the_journal_and_says_what_it_holds(journal, tmp_path):
    out = tmp_path / "snap"
    taken = take_snapshot(journal, out)
    assert _records(out) == _records(journal)
    assert not verify_directory(out).damaged
    described = json.loads((out / SNAPSHOT_FILE).read_text())
    seqs = sorted(_records(journal))
    assert described["first_seq"] == seqs[0] == taken.first_seq
    assert described["last_seq"] == seqs[-1] == taken.last_seq
    assert described["records"] == len(seqs)
    assert described["checkpoint_seq"] == 1
    assert described["files"] == sorted(p.name for p in journal.glob("*.wal"))
    assert described["attempts"] == 1 and described["trimmed_bytes"] == 0
    assert not (out / ".lock").exists()


def test_a_torn_tail_is_left_out(journal, tmp_path):
    whole = _records(journal)
    torn = encode_record(EntryType.OrderNew, max(whole) + 1, 3, b"half written")[:20]
    with open(journal / CURRENT_NAME, "ab") as handle:
        handle.write(torn)
    taken = take_snapshot(journal, tmp_path / "snap")
    assert taken.trimmed_bytes == 20 and taken.last_seq == max(whole)
    assert _records(tmp_path / "snap") == whole
    report = verify_directory(tmp_path / "snap")
    assert not report.damaged and all(s.tail is None for s in report.segments)


def test_a_rotation_during_the_copy_is_retried_never_torn(journal, tmp_path, monkeypatch):
    listings = []
    real = list_segments

    def list_then_rotate(directory: Path):
        listing = real(directory)
        listings.append(listing)
        if len(listings) == 1:  # the engine rotates right after the first listing
            _rotate(directory)
        return listing

    monkeypatch.setattr(snapshot_module, "list_segments", list_then_rotate)
    out = tmp_path / "snap"
    taken = take_snapshot(journal, out)
    assert taken.attempts == 2
    assert _records(out) == _records(journal)  # the rotated-away segment is in it
    assert taken.last_seq == max(_records(journal))
    assert not verify_directory(out).damaged


def test_a_retention_deletion_during_the_copy_is_retried(journal, tmp_path, monkeypatch):
    real = list_segments
    calls = []

    def list_then_delete_oldest(directory: Path):
        listing = real(directory)
        calls.append(1)
        if len(calls) == 1:
            listing[0][0].path.unlink()  # retention, after the listing named it
        return listing

    monkeypatch.setattr(snapshot_module, "list_segments", list_then_delete_oldest)
    out = tmp_path / "snap"
    taken = take_snapshot(journal, out)
    assert taken.attempts == 2
    assert _records(out) == _records(journal)
    assert taken.first_seq == min(_records(journal)) > 1


def test_a_journal_that_never_holds_still_fails_after_bounded_tries(journal, tmp_path, monkeypatch):
    real = list_segments

    def list_and_rotate_every_time(directory: Path):
        listing = real(directory)
        _rotate(directory)
        return listing

    monkeypatch.setattr(snapshot_module, "list_segments", list_and_rotate_every_time)
    with pytest.raises(SnapshotError, match=r"kept changing.*3 tries.*starts at sequence"):
        take_snapshot(journal, tmp_path / "snap", attempts=3)
    assert not any((tmp_path / "snap").iterdir())  # nothing half-copied left behind


def test_a_gap_in_the_journal_itself_is_refused(journal, tmp_path):
    middle = list_segments(journal)[0][1].path
    middle.unlink()
    with pytest.raises(SnapshotError, match="starts at sequence"):
        take_snapshot(journal, tmp_path / "snap", attempts=2)


def test_the_target_must_be_new_or_empty(journal, tmp_path):
    (tmp_path / "snap").mkdir()
    (tmp_path / "snap" / "old").write_text("x")
    with pytest.raises(SnapshotError, match="not empty"):
        take_snapshot(journal, tmp_path / "snap")
    with pytest.raises(SnapshotError, match="no journal"):
        take_snapshot(tmp_path / "missing", tmp_path / "snap2")


async def _trade_while_snapshotting(directory: Path, snapshots: Path) -> list[Path]:
    engine = LiveEngine(engine_config(directory, max_segment_bytes=32768, max_files=4))
    await engine.start()
    engine.market.on_data(quote())
    taken: list[Path] = []
    stop = threading.Event()

    def snapshot_loop() -> None:
        while not stop.is_set():
            out = snapshots / f"s{len(taken):03d}"
            # Rotating every 32 KiB while orders arrive every 2 ms is far harsher than any
            # real journal (64 MiB segments): more tries, so a loaded machine cannot run out.
            take_snapshot(directory, out, attempts=50)
            taken.append(out)

    worker = asyncio.get_running_loop().run_in_executor(None, snapshot_loop)
    for n in range(150):
        await engine.submit(
            SubmitOrder(
                symbol="BTCUSDT",
                side=OrderSide.BUY,
                qty=Decimal("0.01"),
                price=Decimal(49000 - n),
                client_order_id=f"live-{n}",
            )
        )
        await asyncio.sleep(0.002)
    stop.set()
    await worker
    await engine.stop()
    return taken


def test_snapshots_while_a_real_engine_takes_orders_are_each_a_prefix(tmp_path):
    directory = tmp_path / "wal"
    taken = asyncio.run(_trade_while_snapshotting(directory, tmp_path / "snaps"))
    assert len(taken) >= 3
    final = _records(directory)
    seen_rotations = 0
    for out in taken:
        report = verify_directory(out)
        assert not report.damaged, out
        copy = _records(out)
        seqs = sorted(copy)
        assert seqs == list(range(seqs[0], seqs[-1] + 1)), f"{out}: not contiguous"
        described = json.loads((out / SNAPSHOT_FILE).read_text())
        assert (described["first_seq"], described["last_seq"]) == (seqs[0], seqs[-1])
        assert report.last_checkpoint_seq is not None, f"{out}: nothing to replay from"
        # Every record copied is the engine's record (retention may have dropped the oldest
        # from the live journal since).
        assert all(final[seq] == payload for seq, payload in copy.items() if seq in final)
        seen_rotations += described["attempts"] > 1 or len(described["files"]) > 1
    assert seen_rotations, "the engine never rotated while the snapshots ran"
