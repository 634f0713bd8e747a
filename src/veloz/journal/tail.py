"""Following the journal from a sequence on, by reading its segment files: what the history
projector and `veloz db rebuild` consume. Reads only; needs no lock and never repairs.

The reader keeps a cursor (which segment, which byte) so that following a live journal
costs one read of the new bytes. A segment is named by its first sequence once complete;
while it is the current one it is `orders_current.wal`, so the cursor holds the first
sequence, not the name, and finds the file under either name.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

from veloz.journal.framing import HEADER, HEADER_SIZE, MAGIC, Damage, Record, Tail, scan
from veloz.journal.segments import CURRENT_NAME, list_segments, segment_name

CHUNK_BYTES = 4 * 1024 * 1024


@dataclass(slots=True)
class TailRead:
    records: list[Record] = field(default_factory=list)
    # (first missing sequence, first sequence the journal still has) when the entries
    # after the requested sequence are no longer in the journal.
    missing: tuple[int, int] | None = None
    damaged_bytes: int = 0


@dataclass(slots=True)
class _Cursor:
    segment_first_seq: int
    offset: int
    next_seq: int


class JournalTail:
    def __init__(self, directory: Path, chunk_bytes: int = CHUNK_BYTES) -> None:
        self._dir = directory
        self._chunk_bytes = chunk_bytes
        self._cursor: _Cursor | None = None

    def read(self, after_seq: int, up_to_seq: int | None = None, limit: int = 5000) -> TailRead:
        """Records with sequence > `after_seq` (and <= `up_to_seq`), at most `limit`, in
        order. Fewer than `limit` means the reader has caught up with what is written."""
        result = TailRead()
        if self._cursor is None or self._cursor.next_seq != after_seq + 1:
            self._cursor = self._locate(after_seq + 1, result)
        cursor = self._cursor
        while cursor is not None and len(result.records) < limit:
            progressed = self._read_segment(cursor, up_to_seq, limit, result)
            if up_to_seq is not None and cursor.next_seq > up_to_seq:
                break
            if not progressed:
                following = self._next_segment(cursor)
                if following is None:
                    break
                cursor = self._cursor = following
        return result

    def _read_segment(
        self, cursor: _Cursor, up_to_seq: int | None, limit: int, result: TailRead
    ) -> bool:
        """Append the records of the cursor's segment from its offset; False if there
        was nothing new to read there."""
        data = self._read_bytes(cursor)
        if data is None:
            return False
        before = len(result.records)
        end = 0
        for item in scan(data):
            if isinstance(item, Tail):
                break  # an entry still being written, or the end of the chunk
            if isinstance(item, Damage):
                result.damaged_bytes += item.length
                end = item.offset + item.length
                continue
            if up_to_seq is not None and item.seq > up_to_seq:
                break
            if len(result.records) >= limit:
                break
            end = item.offset + item.size
            if item.seq >= cursor.next_seq:
                result.records.append(item)
                cursor.next_seq = item.seq + 1
        cursor.offset += end
        return end > 0 or len(result.records) > before

    def _read_bytes(self, cursor: _Cursor) -> bytes | None:
        """New bytes of the cursor's segment, whichever name it has now."""
        numbered = self._dir / segment_name(cursor.segment_first_seq)
        # Open the current file before asking whether it was renamed: if the rename comes
        # between the two, the numbered name exists by the time it is checked.
        try:
            fd = os.open(self._dir / CURRENT_NAME, os.O_RDONLY)
        except FileNotFoundError:
            fd = -1
        try:
            if numbered.exists():
                if fd >= 0:
                    os.close(fd)
                fd = os.open(numbered, os.O_RDONLY)
            elif fd < 0 or _first_seq(fd) != cursor.segment_first_seq:
                return None
            size = self._chunk_bytes
            while True:
                data = os.pread(fd, size, cursor.offset)
                # A record longer than the chunk (a big checkpoint): read more at once.
                if len(data) < size or _starts_with_record(data):
                    return data or None
                size *= 2
        finally:
            if fd >= 0:
                os.close(fd)

    def _next_segment(self, cursor: _Cursor) -> _Cursor | None:
        """The segment after the cursor's, once the cursor's is complete (renamed, or
        already deleted by retention once everything in it was read)."""
        if not (self._dir / segment_name(cursor.segment_first_seq)).exists():
            try:
                fd = os.open(self._dir / CURRENT_NAME, os.O_RDONLY)
            except FileNotFoundError:
                return None
            try:
                if _first_seq(fd) == cursor.segment_first_seq:
                    return None  # still the current segment: nothing follows yet
            finally:
                os.close(fd)
        return self._locate(cursor.next_seq, TailRead())

    def _locate(self, seq: int, result: TailRead) -> _Cursor | None:
        """A cursor at the start of the segment holding `seq` (or, if that entry is gone,
        the oldest segment, noting what is missing)."""
        firsts: list[int] = []
        segments, _ = list_segments(self._dir)
        for segment in segments:
            if segment.first_seq is not None:
                firsts.append(segment.first_seq)
                continue
            try:
                fd = os.open(segment.path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                first = _first_seq(fd)
            finally:
                os.close(fd)
            if first is not None:
                firsts.append(first)
        if not firsts:
            return None
        holding = [first for first in firsts if first <= seq]
        if not holding:
            result.missing = (seq, firsts[0])
            return _Cursor(firsts[0], 0, firsts[0])
        return _Cursor(holding[-1], 0, seq)


def _first_seq(fd: int) -> int | None:
    """The sequence in the first header (not checked further: the records are, when read)."""
    header = os.pread(fd, HEADER_SIZE, 0)
    if len(header) < HEADER_SIZE:
        return None
    magic, *_, seq, _ts = HEADER.unpack(header)
    return int(seq) if magic == MAGIC else None


def _starts_with_record(data: bytes) -> bool:
    return isinstance(next(scan(data), None), Record)
