"""The audit spool: how audit records leave the process that answered a request without
costing it a database write. The engine appends each record to a spool file; the
projector process imports the spool into the store in batches (`audit_import`) and
deletes what it has imported. A gateway does both itself, on a spool of its own.

Files: `audit_<n>.spool` (n: 16 digits, increasing) in the spool's directory, the
engine's `<journal>/projector/audit` (`spool_dir`), a gateway's VELOZ_GATEWAY_AUDIT_DIR.
Each record is framed as a u32 little-endian length then the MessagePack of the
`AuditRecord`. The writer writes only the newest file: it starts a new one at every start
and when one grows past `SPOOL_FILE_BYTES`, so a file with a newer one beside it is
complete. The importer keeps its place (`import.pos`: file number and offset) and moves
it only after the store committed the records before it.

Guarantee: a record the writer appended survives a crash of the writing or the importing
process: it is in the file (one `write` per record, no user-space buffer) and the
importer resumes from its place. A crash of the importer between the store's commit and
saving its place imports up to one batch twice (at least once, never lost). A power cut
may lose the newest records (the spool is not synced, like `VELOZ_WAL_SYNC=false`); the
journal holds the orders themselves regardless. A record cut short by a crash at the end
of a finished file is dropped and logged.
"""

import logging
import os
import re
import struct
from pathlib import Path

import msgspec

from veloz.persistence.projector_status import projector_dir
from veloz.persistence.store import AuditRecord

logger = logging.getLogger(__name__)

SPOOL_FILE_BYTES = 8 * 1024 * 1024
_HEADER = struct.Struct("<I")
_NAME = re.compile(r"^audit_(\d{16})\.spool$")
_POSITION = "import.pos"


def spool_dir(journal_dir: Path) -> Path:
    """The engine's spool, beside its journal."""
    return projector_dir(journal_dir) / "audit"


def _spool_files(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for entry in directory.iterdir() if directory.is_dir() else ():
        match = _NAME.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), entry))
    return sorted(found)


def _file_name(number: int) -> str:
    return f"audit_{number:016d}.spool"


class AuditSpoolWriter:
    """The writing end (the engine, a gateway): `append` costs an encode and one `write`
    system call."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._dir.mkdir(parents=True, exist_ok=True)
        self._encoder = msgspec.msgpack.Encoder(enc_hook=str)
        self._fd = -1
        self._bytes = 0
        self._number = max((n for n, _ in _spool_files(self._dir)), default=0)
        self._next_file()

    def _next_file(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._number += 1
        path = self._dir / _file_name(self._number)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._bytes = 0

    def append(self, record: AuditRecord) -> None:
        payload = self._encoder.encode(record)
        frame = _HEADER.pack(len(payload)) + payload
        os.write(self._fd, frame)
        self._bytes += len(frame)
        if self._bytes >= SPOOL_FILE_BYTES:
            self._next_file()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class SpoolBatch(msgspec.Struct):
    records: list[AuditRecord]
    number: int  # the file and offset right after these records
    offset: int


class AuditSpoolReader:
    """The importing end (`AuditImporter`): `read(limit)` the next records after the saved
    place, `commit(batch)` once the store holds them."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._dir.mkdir(parents=True, exist_ok=True)
        self._decoder = msgspec.msgpack.Decoder(AuditRecord)
        self.number, self.offset = self._load_position()
        self.torn_records = 0

    def _load_position(self) -> tuple[int, int]:
        try:
            number, offset = (self._dir / _POSITION).read_text().split()
            return int(number), int(offset)
        except (OSError, ValueError):
            return 0, 0

    def _save_position(self) -> None:
        temporary = self._dir / f".{_POSITION}"
        temporary.write_text(f"{self.number} {self.offset}\n")
        os.replace(temporary, self._dir / _POSITION)

    def pending_bytes(self) -> int:
        total = 0
        for number, path in _spool_files(self._dir):
            if number >= self.number:
                try:
                    size = path.stat().st_size
                except FileNotFoundError:
                    continue
                total += size - (self.offset if number == self.number else 0)
        return total

    def read(self, limit: int) -> SpoolBatch:
        """Up to `limit` whole records after the saved place (an empty batch: none yet)."""
        records: list[AuditRecord] = []
        number, offset = self.number, self.offset
        files = [(n, p) for n, p in _spool_files(self._dir) if n >= number]
        for index, (file_number, path) in enumerate(files):
            if file_number != number:
                number, offset = file_number, 0
            finished = index + 1 < len(files)  # the engine writes only the newest file
            try:
                with open(path, "rb") as file:
                    file.seek(offset)
                    data = file.read()
            except FileNotFoundError:
                continue
            used = self._decode(data, records, limit, number)
            offset += used
            if len(records) >= limit:
                break
            if not finished:
                break
            if used < len(data):
                self.torn_records += 1
                logger.error(
                    "audit spool %s ends with a record cut short (%d bytes): dropped",
                    path.name,
                    len(data) - used,
                )
        return SpoolBatch(records, number, offset)

    def _decode(self, data: bytes, into: list[AuditRecord], limit: int, number: int) -> int:
        view = memoryview(data)
        at = 0
        while len(into) < limit and at + _HEADER.size <= len(view):
            (length,) = _HEADER.unpack_from(view, at)
            end = at + _HEADER.size + length
            if end > len(view):
                break
            try:
                into.append(self._decoder.decode(view[at + _HEADER.size : end]))
            except msgspec.DecodeError as exc:
                logger.error("audit spool %d: undecodable record skipped: %s", number, exc)
            at = end
        return at

    def commit(self, batch: SpoolBatch) -> None:
        """The store holds `batch`: move the place after it and delete finished files."""
        self.number, self.offset = batch.number, batch.offset
        self._save_position()
        for number, path in _spool_files(self._dir):
            if number < self.number:
                path.unlink(missing_ok=True)
