"""Read-only checks of a whole journal directory (for `veloz wal verify|stats|inspect`):
every segment, every record, sequence continuity across segments. Changes nothing."""

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from veloz.journal.framing import EntryType, Record, scan
from veloz.journal.recovery import SegmentScan, scan_segment
from veloz.journal.segments import list_segments


@dataclass
class VerifyReport:
    directory: Path
    segments: list[SegmentScan] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    strangers: list[Path] = field(default_factory=list)
    types: Counter[str] = field(default_factory=Counter)
    # Sequence numbers right after which a gap was found (the last record before it).
    gap_after: list[int] = field(default_factory=list)

    @property
    def damaged(self) -> bool:
        return bool(self.gaps) or any(_segment_damaged(s) for s in self.segments)

    @property
    def start_affected(self) -> bool:
        """Whether the damage reaches what the engine replays at start, so that it starts
        READONLY, as recovery decides: replay begins at the newest checkpoint, so damage
        in older segments and gaps before it are history only. The newest checkpoint is
        assumed readable (the engine falls back to an older one, or to sequence 1, if not).
        Unexpected files are set aside by the engine and never count."""
        checkpoint = self.last_checkpoint_seq
        if checkpoint is None:
            first = next((s.first_seq for s in self.segments if s.first_seq is not None), None)
            return self.damaged or (first is not None and first != 1)
        holder = max(i for i, s in enumerate(self.segments) if s.checkpoints)
        if any(_segment_damaged(s) for s in self.segments[holder:]):
            return True
        return any(seq >= checkpoint for seq in self.gap_after)

    @property
    def entries(self) -> int:
        return sum(s.records for s in self.segments)

    @property
    def bytes(self) -> int:
        return sum(s.segment.path.stat().st_size for s in self.segments)

    @property
    def last_checkpoint_seq(self) -> int | None:
        seqs = [cp.seq for s in self.segments for cp in s.checkpoints]
        return max(seqs) if seqs else None


def _segment_damaged(seg_scan: SegmentScan) -> bool:
    # A torn tail of the current segment is repaired at start; anywhere else it is damage.
    return bool(seg_scan.damage) or (seg_scan.tail is not None and not seg_scan.segment.is_current)


def type_name(entry_type: int) -> str:
    try:
        return EntryType(entry_type).name
    except ValueError:
        return f"Unknown({entry_type})"


def verify_directory(directory: Path) -> VerifyReport:
    segments, strangers = list_segments(directory)
    report = VerifyReport(directory, strangers=strangers)
    expected: int | None = None
    for segment in segments:
        seg_scan = scan_segment(segment)
        report.segments.append(seg_scan)
        for item in scan(seg_scan.data):
            if not isinstance(item, Record):
                continue
            report.types[type_name(item.entry_type)] += 1
            if expected is not None and item.seq != expected:
                report.gaps.append(
                    f"{segment.path.name}: expected sequence {expected}, found {item.seq}"
                )
                report.gap_after.append(expected - 1)
            expected = item.seq + 1
        # Records are not kept: a large journal is verified one file at a time.
        seg_scan.data = b""
    return report


def iterate_records(directory: Path, from_seq: int = 0) -> Iterator[tuple[Path, Record]]:
    """Every valid record in every segment, oldest first."""
    segments, _ = list_segments(directory)
    for segment in segments:
        for item in scan(segment.path.read_bytes()):
            if isinstance(item, Record) and item.seq >= from_seq:
                yield segment.path, item
