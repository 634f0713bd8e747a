"""The journal directory: segment names, listing, the single-writer lock, quarantine.

orders_0000000000000001.wal   completed segment, named after its first sequence
orders_current.wal            the active segment
quarantine/                   copies of damaged files, kept for inspection
.lock                         held by the one process that writes this journal
durable.seq                   the last durable sequence, for readers in other processes
projector/                    the history projector's status, lock and audit spool
"""

import fcntl
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

CURRENT_NAME = "orders_current.wal"
LOCK_NAME = ".lock"
QUARANTINE_DIR = "quarantine"
DURABLE_MARK_NAME = "durable.seq"
# Where the history projector keeps what it shares with the engine (not the journal's).
PROJECTOR_DIR = "projector"
_NUMBERED = re.compile(r"^orders_(\d{16})\.wal$")


class JournalLocked(OSError):
    """Another process holds the journal directory."""


@dataclass(frozen=True, slots=True)
class Segment:
    path: Path
    first_seq: int | None  # None for the current segment (its first record tells)

    @property
    def is_current(self) -> bool:
        return self.first_seq is None


def segment_name(first_seq: int) -> str:
    return f"orders_{first_seq:016d}.wal"


def list_segments(directory: Path) -> tuple[list[Segment], list[Path]]:
    """Completed segments oldest first, then the current one if it exists; and the files
    that are neither (left alone, but reported)."""
    numbered: list[Segment] = []
    current: Segment | None = None
    strangers: list[Path] = []
    for entry in sorted(directory.iterdir()):
        if entry.name in (LOCK_NAME, QUARANTINE_DIR, DURABLE_MARK_NAME, PROJECTOR_DIR):
            continue
        match = _NUMBERED.fullmatch(entry.name)
        if match and entry.is_file():
            numbered.append(Segment(entry, int(match.group(1))))
        elif entry.name == CURRENT_NAME and entry.is_file():
            current = Segment(entry, None)
        else:
            strangers.append(entry)
    numbered.sort(key=lambda s: s.first_seq or 0)
    return numbered + ([current] if current else []), strangers


def fsync_directory(directory: Path) -> None:
    """Make renames and creations in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def quarantine(directory: Path, damaged: Path, ts_ns: int) -> Path:
    """Copy a damaged file aside so an operator can inspect it after we repair or skip."""
    target_dir = directory / QUARANTINE_DIR
    target_dir.mkdir(exist_ok=True)
    target = target_dir / f"{damaged.name}.{ts_ns}"
    shutil.copy2(damaged, target)
    return target


class DirectoryLock:
    """An exclusive flock on `<dir>/.lock`: one writer per journal. The kernel releases it
    when the process dies, so a kill -9 never leaves a stale lock behind."""

    def __init__(self, directory: Path) -> None:
        self._path = directory / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise JournalLocked(
                f"journal directory {self._path.parent} is in use by another process (pid {holder})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
