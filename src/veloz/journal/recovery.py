"""Opening a journal after a start or a crash: repair what is safe to repair, report what
is not, find the newest valid checkpoint and hand back the entries after it in order.

- A torn tail on the current segment (an append cut short by a crash) is truncated.
- Invalid bytes anywhere else, a segment missing from the middle (a sequence gap) or a
  journal that starts without a checkpoint are damage: counted, the file copied to
  `quarantine/`, and reported so the engine starts READONLY. Nothing is dropped silently.
"""

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from veloz.journal.framing import Damage, EntryType, Record, Tail, scan
from veloz.journal.segments import (
    DirectoryLock,
    Segment,
    list_segments,
    quarantine,
)
from veloz.journal.stats import JournalStats
from veloz.journal.writer import JournalConfig, JournalWriter


@dataclass(slots=True)
class SegmentScan:
    segment: Segment
    data: bytes
    first_seq: int | None = None
    last_seq: int | None = None
    records: int = 0
    checkpoints: list[Record] = field(default_factory=list)
    damage: list[Damage | Tail] = field(default_factory=list)
    tail: Tail | None = None


def scan_segment(segment: Segment) -> SegmentScan:
    """Read one segment and summarise it (records, checkpoints, damage, torn tail)."""
    result = SegmentScan(segment, segment.path.read_bytes())
    for item in scan(result.data):
        if isinstance(item, Record):
            if result.first_seq is None:
                result.first_seq = item.seq
            result.last_seq = item.seq
            result.records += 1
            if item.entry_type == EntryType.Checkpoint:
                result.checkpoints.append(item)
        elif isinstance(item, Tail):
            result.tail = item
        else:
            result.damage.append(item)
    return result


@dataclass
class Recovery:
    """What opening the journal found. Iterate `entries()` once to replay."""

    directory: Path
    checkpoint: Record | None
    next_seq: int
    stats: JournalStats
    problems: list[str] = field(default_factory=list)
    strangers: list[Path] = field(default_factory=list)
    quarantined: list[Path] = field(default_factory=list)
    duplicates_skipped: int = 0
    _replay_from: list[tuple[SegmentScan, int]] = field(default_factory=list)
    _expected_seq: int | None = None

    @property
    def damaged(self) -> bool:
        """Whether state rebuilt from this journal may be incomplete."""
        return bool(self.problems)

    def entries(self) -> Iterator[Record]:
        """Entries after the checkpoint, in sequence order, duplicates skipped; a gap is
        recorded as damage (and counted) where it is found."""
        expected = self._expected_seq
        for seg_scan, start in self._replay_from:
            for item in scan(seg_scan.data, start):
                if not isinstance(item, Record):
                    continue  # counted when the segment was scanned
                if expected is not None and item.seq < expected:
                    self.duplicates_skipped += 1
                    continue
                if expected is not None and item.seq > expected:
                    self._report(
                        f"sequence gap: expected {expected}, found {item.seq} "
                        f"in {seg_scan.segment.path.name}"
                    )
                expected = item.seq + 1
                self.stats.replayed_entries += 1
                yield item

    def _report(self, problem: str) -> None:
        self.problems.append(problem)
        self.stats.corrupted_entries += 1


def recover(
    config: JournalConfig,
    stats: JournalStats,
    accept_checkpoint: Callable[[Record], bool],
    now_ns: Callable[[], int] = time.time_ns,
) -> tuple[Recovery, JournalWriter]:
    """Lock and repair the journal directory, choose the checkpoint, and return the
    recovery (for replay) and a writer positioned after the last valid entry.

    `accept_checkpoint` decodes a checkpoint (keeping what it decoded) and says whether it
    is usable; it is called newest first and at most once per checkpoint."""
    directory = Path(config.directory)
    directory.mkdir(parents=True, exist_ok=True)
    lock = DirectoryLock(directory)
    lock.acquire()
    try:
        segments, strangers = list_segments(directory)
        scans, chosen = _scan_newest_first(segments, accept_checkpoint)
        recovery = Recovery(directory, None, 1, stats, strangers=strangers)
        _repair_and_report(recovery, scans, now_ns)
        _choose_start(recovery, scans, chosen)
    except BaseException:
        lock.release()
        raise
    current = scans[-1] if scans and scans[-1].segment.is_current else None
    checkpoint_segment = None
    if chosen is not None:
        holder = scans[chosen[0]]
        checkpoint_segment = holder.segment.first_seq or holder.first_seq
    writer = JournalWriter(
        config,
        stats,
        lock,
        next_seq=recovery.next_seq,
        segment_first_seq=current.first_seq if current else None,
        segment_bytes=len(current.data) if current else 0,
        checkpoint_segment_seq=checkpoint_segment,
    )
    return recovery, writer


def _scan_newest_first(
    segments: list[Segment], accept_checkpoint: Callable[[Record], bool]
) -> tuple[list[SegmentScan], tuple[int, Record] | None]:
    """Scan from the newest segment back until one holds a usable checkpoint: older
    segments are not needed for replay (`veloz wal verify` checks them all). Returns the
    scans oldest first and (index of the scan, checkpoint) if one was usable."""
    scans: list[SegmentScan] = []
    chosen: Record | None = None
    for segment in reversed(segments):
        seg_scan = scan_segment(segment)
        scans.append(seg_scan)
        chosen = next((cp for cp in reversed(seg_scan.checkpoints) if accept_checkpoint(cp)), None)
        if chosen is not None:
            break
    scans.reverse()
    return scans, (0, chosen) if chosen is not None else None


def _repair_and_report(
    recovery: Recovery, scans: list[SegmentScan], now_ns: Callable[[], int]
) -> None:
    for seg_scan in scans:
        path = seg_scan.segment.path
        if seg_scan.damage or (seg_scan.tail and not seg_scan.segment.is_current):
            recovery.quarantined.append(quarantine(recovery.directory, path, now_ns()))
            for damage in seg_scan.damage:
                recovery._report(
                    f"{path.name}: {damage.length} invalid bytes at offset {damage.offset} "
                    f"({damage.reason})"
                )
        if seg_scan.tail is None:
            continue
        if seg_scan.segment.is_current:
            _truncate(path, seg_scan.tail.offset)
            seg_scan.data = seg_scan.data[: seg_scan.tail.offset]
            recovery.stats.torn_tail_bytes += seg_scan.tail.length
        else:
            recovery._report(
                f"{path.name}: {seg_scan.tail.length} invalid bytes at its end "
                f"({seg_scan.tail.reason}); a completed segment must end on a record"
            )


def _choose_start(
    recovery: Recovery, scans: list[SegmentScan], chosen: tuple[int, Record] | None
) -> None:
    last_seqs = [s.last_seq for s in scans if s.last_seq is not None]
    recovery.next_seq = max(last_seqs) + 1 if last_seqs else 1
    if chosen is not None:
        index, checkpoint = chosen
        recovery.checkpoint = checkpoint
        recovery._expected_seq = checkpoint.seq + 1
        recovery._replay_from = [(scans[index], checkpoint.offset + checkpoint.size)]
        recovery._replay_from += [(s, 0) for s in scans[index + 1 :]]
        return
    # No usable checkpoint: every segment was scanned and replay must start at sequence 1.
    recovery._replay_from = [(s, 0) for s in scans]
    first = next((s.first_seq for s in scans if s.first_seq is not None), None)
    if first is not None and first != 1:
        recovery._report(
            f"the journal starts at sequence {first} and holds no usable checkpoint: "
            "earlier segments are missing"
        )
    recovery._expected_seq = first


def _truncate(path: Path, length: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, length)
        os.fsync(fd)
    finally:
        os.close(fd)
