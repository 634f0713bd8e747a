"""The group-commit journal writer.

`append` frames an entry, gives it the next sequence number and queues it; it returns at
once with the sequence and a future that completes when the entry is durable. One flusher
task writes whatever has queued since the last write in a single `write` and makes it
durable with one `fdatasync`, so entries that arrive while a sync is in flight share the
next one: throughput is batches per second times batch size, not one entry per fsync.

Where: the `write` on the event loop (a copy into the page cache, microseconds), the
`fdatasync` in the sync helper process (`sync_helper.py`: a thread would contend for the
GIL with the order path). A batch that rotates the segment, or is larger than
`INLINE_WRITE_BYTES` (a checkpoint of a big book), is written on the writer's thread
instead, so the loop never waits on an fsync or a long copy; if the helper is gone the
thread syncs too.

With `sync=False` the future completes once the bytes are in the OS (a process crash loses
nothing) and `fdatasync` runs every `flush_interval_ms` (a power loss may lose that window).

Rotation is decided at append time, so sequence numbers always grow in file order: when
the next entry would take the current segment past `max_segment_bytes`, a rotation marker
and a `Rotation` entry are queued before it, and the flusher renames the full segment to
its numbered name when it reaches the marker.
"""

import asyncio
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import msgspec

from veloz.journal.durable_mark import DurableMarkWriter
from veloz.journal.framing import EntryType, encode_record
from veloz.journal.segments import (
    CURRENT_NAME,
    DirectoryLock,
    fsync_directory,
    list_segments,
    segment_name,
)
from veloz.journal.stats import JournalStats
from veloz.journal.sync_helper import SyncHelper, SyncHelperGone
from veloz.model.errors import ErrorCode, VelozError

logger = logging.getLogger(__name__)

# A batch up to this size is written on the event loop; a larger one on the thread.
INLINE_WRITE_BYTES = 1024 * 1024


class JournalConfig(msgspec.Struct, frozen=True, kw_only=True):
    directory: str = "./data/wal"
    max_segment_bytes: int = 64 * 1024 * 1024
    max_files: int = 10
    sync: bool = True
    checkpoint_interval: int = 1000
    flush_interval_ms: int = 100


class JournalUnavailable(VelozError):
    """The journal cannot take entries (disk full, I/O error, closed)."""

    code = ErrorCode.JOURNAL_UNAVAILABLE


class RotationPayload(msgspec.Struct, frozen=True, kw_only=True):
    """Payload of a `Rotation` entry: which segment came before this one."""

    previous_segment: str
    previous_last_seq: int


class BatchDurability(asyncio.Future[None]):
    """The durability of one batch, shared by every entry in it. It cannot be cancelled:
    a waiter that is cancelled while awaiting it is cancelled when the batch completes,
    and the batch stays intact for every other waiter (what `asyncio.shield` would do
    per waiter, done once per batch)."""

    def cancel(self, msg: object = None) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class _Rotate:
    """Queue marker: close the current segment, which began at `finished_first_seq`."""

    finished_first_seq: int
    # Segments older than the one holding the newest checkpoint are no longer needed.
    keep_from_seq: int | None
    # ...unless a reader of the files still needs this sequence (see `retention_floor`).
    reader_floor_seq: int | None = None


class JournalWriter:
    def __init__(
        self,
        config: JournalConfig,
        stats: JournalStats,
        lock: DirectoryLock,
        *,
        next_seq: int,
        segment_first_seq: int | None,
        segment_bytes: int,
        checkpoint_segment_seq: int | None,
    ) -> None:
        self._config = config
        self._dir = Path(config.directory)
        self._stats = stats
        self._lock = lock
        self._next_seq = next_seq
        self._segment_first_seq = segment_first_seq
        self._segment_bytes = segment_bytes
        self._checkpoint_segment_seq = checkpoint_segment_seq
        self.entries_since_checkpoint = 0
        self._pending: list[bytes | _Rotate] = []
        self._pending_future: BatchDurability | None = None
        self._pending_entries = 0
        self._pending_bytes = 0
        self._pending_rotates = False
        # Bumped at each rotation: tells the sync helper to open the new segment.
        self._generation = 0
        self._sync_helper: SyncHelper | None = None
        self._inflight: BatchDurability | None = None
        self._failure: str | None = None
        self._closing = False
        self._fd = -1
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="veloz-journal")
        self._wakeup = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._dirty = False
        # The last sequence known to be on disk: readers of the files (the history
        # projector) must not go past it, or they could record what a crash then loses.
        self.durable_seq = next_seq - 1
        # The oldest sequence someone still has to read from the files (the projector's
        # next entry); retention keeps its segment. None: nobody is reading.
        self.retention_floor: Callable[[], int | None] | None = None
        self._mark: DurableMarkWriter | None = None

    # -- state -----------------------------------------------------------------------

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def failure(self) -> str | None:
        """Why the journal stopped taking entries, or None while it is healthy."""
        return self._failure

    @property
    def directory(self) -> Path:
        return self._dir

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Open the current segment and start the flusher (needs a running loop)."""
        self._fd = os.open(self._dir / CURRENT_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._mark = DurableMarkWriter(self._dir)
        self._mark.publish(self.durable_seq)
        fsync_directory(self._dir)
        if self._config.sync:
            try:
                self._sync_helper = SyncHelper(self._dir)
            except OSError as exc:
                logger.error("journal sync helper not started (%s); syncing on a thread", exc)
        self._flusher = asyncio.get_running_loop().create_task(
            self._flush_loop(), name="veloz-journal-flusher"
        )
        if not self._config.sync:
            self._ticker = asyncio.get_running_loop().create_task(
                self._sync_ticker(), name="veloz-journal-sync-ticker"
            )

    async def close(self) -> None:
        """Write and sync everything queued, then release the files and the lock."""
        if self._closing:
            return
        self._closing = True
        self._wakeup.set()
        if self._flusher is not None:
            await self._flusher
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        if self._fd >= 0:
            if self._failure is None:
                await asyncio.get_running_loop().run_in_executor(
                    self._executor, os.fdatasync, self._fd
                )
            os.close(self._fd)
            self._fd = -1
        if self._mark is not None:
            self._mark.close()
        if self._sync_helper is not None:
            self._sync_helper.close()
            self._sync_helper = None
        self._executor.shutdown(wait=True)
        self._lock.release()

    # -- appending -------------------------------------------------------------------

    def append(
        self, entry_type: EntryType, payload: bytes, ts_ns: int
    ) -> tuple[int, BatchDurability]:
        """Queue one entry; returns its sequence and a future done when it is durable."""
        if self._failure is not None:
            raise JournalUnavailable(self._failure)
        if self._closing:
            raise JournalUnavailable("the journal is closing")
        frame_size = len(payload) + 32
        if self._segment_first_seq is None:
            self._segment_first_seq = self._next_seq
        elif (
            self._segment_bytes > 0
            and self._segment_bytes + frame_size > self._config.max_segment_bytes
        ):
            self._queue_rotation(ts_ns)
        seq = self._next_seq
        self._next_seq += 1
        self._enqueue(encode_record(entry_type, seq, ts_ns, payload))
        if entry_type is EntryType.Checkpoint:
            self._checkpoint_segment_seq = self._segment_first_seq
            self.entries_since_checkpoint = 0
        else:
            self.entries_since_checkpoint += 1
        future = self._pending_future
        assert future is not None
        return seq, future

    def rotate_now(self, ts_ns: int) -> None:
        """Start a new segment with the next entry (used to put damage found at start
        behind a fresh checkpoint, so it is not read, and reported, at every start)."""
        if self._segment_bytes > 0:
            self._queue_rotation(ts_ns)

    async def append_durable(self, entry_type: EntryType, payload: bytes, ts_ns: int) -> int:
        seq, durable = self.append(entry_type, payload, ts_ns)
        await durable
        return seq

    async def sync(self) -> None:
        """Wait until everything appended so far is durable (or failed)."""
        waiting = self._pending_future or self._inflight
        if waiting is not None:
            await waiting

    def _enqueue(self, frame: bytes | _Rotate) -> None:
        if self._pending_future is None:
            self._pending_future = BatchDurability(loop=asyncio.get_running_loop())
            self._wakeup.set()
        self._pending.append(frame)
        if isinstance(frame, bytes):
            self._pending_entries += 1
            self._pending_bytes += len(frame)
            self._segment_bytes += len(frame)
        else:
            self._pending_rotates = True

    def _queue_rotation(self, ts_ns: int) -> None:
        finished = self._segment_first_seq
        assert finished is not None
        floor = self.retention_floor() if self.retention_floor is not None else None
        self._enqueue(_Rotate(finished, self._checkpoint_segment_seq, floor))
        seq = self._next_seq
        self._next_seq += 1
        self._segment_first_seq = seq
        self._segment_bytes = 0
        payload = msgspec.msgpack.encode(
            RotationPayload(previous_segment=segment_name(finished), previous_last_seq=seq - 1)
        )
        self._enqueue(encode_record(EntryType.Rotation, seq, ts_ns, payload))
        # A fresh segment should start with a checkpoint soon, so replay reads only it.
        self.entries_since_checkpoint = max(
            self.entries_since_checkpoint, self._config.checkpoint_interval
        )

    # -- flushing (the flusher task and its thread) ----------------------------------

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closing:
                    return
                await self._wakeup.wait()
                self._wakeup.clear()
                continue
            items, future, entries = self._pending, self._pending_future, self._pending_entries
            on_thread = self._pending_rotates or self._pending_bytes > INLINE_WRITE_BYTES
            self._pending, self._pending_future, self._pending_entries = [], None, 0
            self._pending_bytes, self._pending_rotates = 0, False
            last_seq = self._next_seq - 1  # every entry up to here is in `items` or before
            assert future is not None
            self._inflight = future
            try:
                if on_thread:
                    written = await loop.run_in_executor(self._executor, self._write_items, items)
                else:
                    written = self._write_items(items)
                if self._config.sync:
                    await self._make_durable()
                else:
                    self._dirty = True
                # Readers in other processes go as far as this; published once durable.
                if self._mark is not None:
                    self._mark.publish(last_seq)
            except OSError as exc:
                self._fail(exc, future)
                return
            self._inflight = None
            self.durable_seq = last_seq
            self._stats.batch_size.observe(entries)
            self._stats.entries_written += entries
            self._stats.bytes_written += written
            future.set_result(None)

    def _write_items(self, items: list[bytes | _Rotate]) -> int:
        """Write a batch, rotating where it says so; returns the bytes written."""
        chunk: list[bytes] = []
        written = 0
        for item in items:
            if isinstance(item, _Rotate):
                written += self._write_all(b"".join(chunk))
                chunk = []
                self._rotate(item)
            else:
                chunk.append(item)
        return written + self._write_all(b"".join(chunk))

    async def _make_durable(self) -> None:
        helper = self._sync_helper
        if helper is not None:
            try:
                seconds = await helper.sync(self._generation)
            except SyncHelperGone as exc:
                logger.error("journal sync helper lost (%s); syncing on a thread from now", exc)
                self._sync_helper = None
                helper.close()
            else:
                self._stats.fsync_seconds.observe(seconds)
                return
        await asyncio.get_running_loop().run_in_executor(self._executor, self._timed_sync)

    def _write_all(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        return len(data)

    def _rotate(self, marker: _Rotate) -> None:
        os.fdatasync(self._fd)
        os.close(self._fd)
        self._fd = -1
        finished = self._dir / segment_name(marker.finished_first_seq)
        os.rename(self._dir / CURRENT_NAME, finished)
        self._fd = os.open(self._dir / CURRENT_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        fsync_directory(self._dir)
        self._generation += 1
        self._stats.rotations += 1
        self._apply_retention(marker.keep_from_seq, marker.reader_floor_seq)

    def _apply_retention(self, keep_from_seq: int | None, reader_floor_seq: int | None) -> None:
        """Delete the oldest completed segments beyond `max_files`, but never one that
        replay still needs (the newest checkpoint's segment and everything after it) nor
        one holding entries a reader has not read yet."""
        if keep_from_seq is None:
            return
        segments, _ = list_segments(self._dir)
        completed = [s.first_seq for s in segments if s.first_seq is not None]
        if reader_floor_seq is not None:
            holding = [seq for seq in completed if seq <= reader_floor_seq]
            if holding:
                keep_from_seq = min(keep_from_seq, holding[-1])
        excess = len(completed) - self._config.max_files
        deletable = [self._dir / segment_name(seq) for seq in completed if seq < keep_from_seq]
        for path in deletable[: max(excess, 0)]:
            path.unlink()
            self._stats.segments_deleted += 1
        if excess > 0 and deletable:
            fsync_directory(self._dir)

    async def _sync_ticker(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self._config.flush_interval_ms / 1000
        while self._failure is None:
            await asyncio.sleep(interval)
            if self._dirty and self._fd >= 0:
                self._dirty = False
                try:
                    await loop.run_in_executor(self._executor, self._timed_sync)
                except OSError as exc:
                    self._fail(exc, None)

    def _timed_sync(self) -> None:
        started = time.perf_counter()
        os.fdatasync(self._fd)
        self._stats.fsync_seconds.observe(time.perf_counter() - started)

    def _fail(self, exc: OSError, inflight: BatchDurability | None) -> None:
        self._failure = f"cannot write the journal in {self._dir}: {exc.strerror or exc}"
        error = JournalUnavailable(self._failure)
        for future in (inflight, self._pending_future):
            if future is not None and not future.done():
                future.set_exception(error)
                # Mark it retrieved: a batch nobody awaited any more must not warn.
                future.exception()
        self._pending, self._pending_future, self._inflight = [], None, None
