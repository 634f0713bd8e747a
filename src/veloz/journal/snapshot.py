"""A consistent copy of a journal directory while its engine writes it (`veloz wal
snapshot`), without taking the engine's lock.

Completed segments never change once renamed, so they are copied as they are. The current
segment is read once and cut after its last complete, CRC-valid record (an append in
flight leaves a torn tail). A rotation or a retention deletion during the copy shows up as
a file that vanished, a sequence gap between the copied files (the current segment no
longer follows the last completed one listed), or, when the current segment holds no
record yet, a completed segment that appeared after the listing: the copy is then thrown
away and taken again, a bounded number of times. The result is checked with the journal's
own verify code and described in `snapshot.json`.
"""

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from veloz.journal.framing import EntryType, Record, Tail, scan
from veloz.journal.segments import CURRENT_NAME, fsync_directory, list_segments
from veloz.journal.verify import verify_directory

SNAPSHOT_FILE = "snapshot.json"
ATTEMPTS = 10


class SnapshotError(Exception):
    """No consistent snapshot could be taken (the message says why)."""


class _Raced(Exception):
    """The journal changed under the copy in a way that makes it inconsistent; `restart`:
    what was copied is unusable (start over), else only the current segment is."""

    def __init__(self, reason: str, restart: bool) -> None:
        super().__init__(reason)
        self.restart = restart


@dataclass(frozen=True, slots=True)
class _Copied:
    name: str
    segment_seq: int | None  # from a completed segment's name; None for the current one
    first_seq: int | None
    last_seq: int | None
    records: int
    after_rotation: bool  # its first record is a Rotation entry: a segment came before


@dataclass(frozen=True, slots=True)
class Snapshot:
    directory: Path
    first_seq: int | None
    last_seq: int | None
    records: int
    checkpoint_seq: int | None
    files: tuple[str, ...]
    created_ns: int
    attempts: int
    trimmed_bytes: int

    def manifest(self) -> dict[str, object]:
        return {
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "records": self.records,
            "checkpoint_seq": self.checkpoint_seq,
            "files": list(self.files),
            "created_ns": self.created_ns,
            "attempts": self.attempts,
            "trimmed_bytes": self.trimmed_bytes,
        }


def take_snapshot(source: Path, out: Path, attempts: int = ATTEMPTS) -> Snapshot:
    """Copy the journal in `source` into `out` (created; must be empty if it exists)."""
    if not source.is_dir():
        raise SnapshotError(f"no journal directory at {source}")
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise SnapshotError(f"{out} is not empty")
    completed: list[_Copied] = []
    reason = ""
    for attempt in range(1, attempts + 1):
        try:
            completed = _copy_completed(source, out, completed)
            current, trimmed = _copy_current(source, out, completed)
        except _Raced as raced:
            reason = str(raced)
            (out / CURRENT_NAME).unlink(missing_ok=True)
            if raced.restart:
                _empty(out)
                completed = []
            time.sleep(0.01 * attempt)
            continue
        return _finish(out, [*completed, *current], attempt, trimmed)
    _empty(out)
    raise SnapshotError(f"the journal kept changing under the copy ({attempts} tries): {reason}")


def _copy_completed(source: Path, out: Path, done: list[_Copied]) -> list[_Copied]:
    """`done` and the completed segments renamed since it was copied: a completed segment
    never changes, so a retry copies only the new ones."""
    newest = done[-1].segment_seq if done else None
    copied = list(done)
    for segment in list_segments(source)[0]:
        if segment.first_seq is None or (newest is not None and segment.first_seq <= newest):
            continue
        try:
            data = segment.path.read_bytes()
        except FileNotFoundError:
            raise _Raced(f"{segment.path.name} was deleted during the copy", True) from None
        copied.append(_write(out, segment.path.name, data, segment.first_seq))
    _check_contiguous(copied, restart=True)
    return copied


def _copy_current(source: Path, out: Path, completed: list[_Copied]) -> tuple[list[_Copied], int]:
    """The current segment up to its last complete record, if it follows `completed`."""
    try:
        data = (source / CURRENT_NAME).read_bytes()
    except FileNotFoundError:
        _check_none_appeared(source, completed)  # between a rotation's rename and create
        return [], 0
    data, trimmed = _complete_records(data)
    part = _write(out, CURRENT_NAME, data, None)
    if part.first_seq is None:
        _check_none_appeared(source, completed)
    elif not completed and part.after_rotation:
        # Retention always keeps the segment holding the newest checkpoint: a current
        # segment that follows a rotation is never alone unless its predecessor was renamed
        # after the listing.
        raise _Raced(f"{CURRENT_NAME} follows a segment that is not in the copy", False)
    _check_contiguous([*completed[-1:], part], restart=False)
    return [part], trimmed


def _check_none_appeared(source: Path, completed: list[_Copied]) -> None:
    """With no record in the current segment to check continuity with: no segment may have
    been renamed after the listing (its records would be missing from the copy)."""
    newest = completed[-1].segment_seq if completed else 0
    appeared = [s.path.name for s in list_segments(source)[0] if (s.first_seq or 0) > (newest or 0)]
    if appeared:
        raise _Raced(f"the journal rotated during the copy ({', '.join(appeared)})", False)


def _complete_records(data: bytes) -> tuple[bytes, int]:
    """`data` cut after its last valid record when only a torn tail follows it."""
    end = len(data)
    for item in scan(data):
        if isinstance(item, Tail):
            end = item.offset
    return data[:end], len(data) - end


def _write(out: Path, name: str, data: bytes, segment_seq: int | None) -> _Copied:
    records = [item for item in scan(data) if isinstance(item, Record)]
    with open(out / name, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    first = records[0].seq if records else None
    last = records[-1].seq if records else None
    rotated = bool(records) and records[0].entry_type == EntryType.Rotation
    return _Copied(name, segment_seq, first, last, len(records), rotated)


def _check_contiguous(copied: list[_Copied], restart: bool) -> None:
    expected: int | None = None
    for part in copied:
        if part.first_seq is None:
            continue
        if expected is not None and part.first_seq != expected:
            raise _Raced(
                f"{part.name} starts at sequence {part.first_seq}, expected {expected} "
                "(a segment rotated or was deleted during the copy)",
                restart,
            )
        expected = (part.last_seq or 0) + 1


def _finish(out: Path, copied: list[_Copied], attempts: int, trimmed: int) -> Snapshot:
    report = verify_directory(out)
    if report.damaged:
        problems = report.gaps + [
            f"{s.segment.path.name}: {len(s.damage)} damaged stretch(es)"
            for s in report.segments
            if s.damage or s.tail is not None
        ]
        raise SnapshotError(
            "the journal itself is damaged (veloz wal verify shows where): " + "; ".join(problems)
        )
    with_records = [c for c in copied if c.first_seq is not None]
    snapshot = Snapshot(
        directory=out,
        first_seq=with_records[0].first_seq if with_records else None,
        last_seq=with_records[-1].last_seq if with_records else None,
        records=report.entries,
        checkpoint_seq=report.last_checkpoint_seq,
        files=tuple(c.name for c in copied),
        created_ns=time.time_ns(),
        attempts=attempts,
        trimmed_bytes=trimmed,
    )
    (out / SNAPSHOT_FILE).write_text(json.dumps(snapshot.manifest(), indent=2) + "\n")
    fsync_directory(out)
    return snapshot


def _empty(out: Path) -> None:
    for entry in out.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
