"""The durable mark: how far the journal is on disk, published for readers in other
processes (the history projector run as `veloz projector`).

`<journal>/durable.seq` holds 16 bytes: the last durable sequence (u64, little-endian) and
the CRC32 of those 8 bytes (u32) and 4 reserved bytes. The writer rewrites it in place with
one `pwrite` after each group commit's `fdatasync`, so the mark never runs ahead of the
disk. It is itself never synced: after a power loss it may be older than the journal (a
reader then waits for the next commit) or gone (a reader sees 0 and waits), never newer,
because the value is written only once its entries are durable. A reader that catches a
write half done sees a CRC that does not match and reads again.
"""

import os
import struct
import zlib
from pathlib import Path

from veloz.journal.segments import DURABLE_MARK_NAME

_LAYOUT = struct.Struct("<QII")


def _encode(seq: int) -> bytes:
    value = seq.to_bytes(8, "little")
    return _LAYOUT.pack(seq, zlib.crc32(value), 0)


class DurableMarkWriter:
    """Held by the journal writer: `publish(seq)` after entries up to `seq` are durable."""

    def __init__(self, directory: Path) -> None:
        self._fd = os.open(directory / DURABLE_MARK_NAME, os.O_RDWR | os.O_CREAT, 0o644)

    def publish(self, seq: int) -> None:
        os.pwrite(self._fd, _encode(seq), 0)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_durable_mark(directory: Path, attempts: int = 100) -> int:
    """The last durable sequence the journal's writer published; 0 if there is none yet
    (no writer has run, or the file was lost: nothing is known to be durable)."""
    try:
        with open(directory / DURABLE_MARK_NAME, "rb") as file:
            for _ in range(attempts):
                data = os.pread(file.fileno(), _LAYOUT.size, 0)
                if len(data) < _LAYOUT.size:
                    return 0
                seq, crc, _reserved = _LAYOUT.unpack(data)
                if zlib.crc32(seq.to_bytes(8, "little")) == crc:
                    return int(seq)
    except FileNotFoundError:
        return 0
    return 0  # never consistent: as if nothing were known to be durable
