"""The journal's sync helper: a child process that runs the group commit's `fdatasync`,
so the engine's process has no second Python thread on its order path.

Why a process and not a thread: a Python thread needs the GIL before and after each
system call, and while the event loop is busy it waits for it. uvloop drops the GIL around
every callback, so the waiting thread is woken dozens of times per batch only to find it
taken again: measured under a flood of orders, about 40 futile wake-ups of the journal's
thread and as many `futex` calls on the event loop per batch, and the loop idle 5 % of the
time waiting to get the GIL back (bench/README.md, P2). A process has a GIL of its own.

The engine writes each batch itself (`write` into the page cache, microseconds) and asks
the helper to make the segment durable: `fdatasync` flushes the file's data and size
whichever descriptor wrote them. The pipes carry fixed-size messages, one request at a
time (the flusher waits for each batch before the next):

- request: u64 little-endian, the segment's generation; the helper (re)opens
  `orders_current.wal` when it changes (the writer rotated), then syncs it;
- answer: i32 errno (0: durable) and u64 nanoseconds the sync took.

The helper ignores SIGINT and SIGTERM (a Ctrl-C or a service manager's stop reaches the
whole process group; the engine still needs its syncs while it shuts down) and exits when
its input closes: when the engine closes the journal or dies, even by SIGKILL.
"""

import asyncio
import contextlib
import errno
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

from veloz.journal.segments import CURRENT_NAME

REQUEST = struct.Struct("<Q")
ANSWER = struct.Struct("<iQ")


class SyncHelperGone(Exception):
    """The helper process is not there to answer (it died or could not start)."""


class SyncHelper:
    """The engine's end. `await sync(generation)` returns the seconds the `fdatasync` took,
    raises OSError when it failed (the journal is then not durable), SyncHelperGone when
    the helper is gone (the caller syncs by other means)."""

    def __init__(self, directory: Path) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "veloz.journal.sync_helper", str(directory)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._requests = self._process.stdin.fileno()
        self._answers = self._process.stdout.fileno()
        os.set_blocking(self._answers, False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._answers, self._on_answer)
        self._buffer = b""
        self._waiting: asyncio.Future[bytes] | None = None
        self._gone = False

    @property
    def pid(self) -> int:
        return self._process.pid

    async def sync(self, generation: int) -> float:
        if self._gone:
            raise SyncHelperGone("the sync helper has exited")
        if self._waiting is not None:
            raise RuntimeError("one sync at a time")
        waiting = self._waiting = self._loop.create_future()
        try:
            os.write(self._requests, REQUEST.pack(generation))
        except OSError as exc:  # EPIPE: it has gone
            self._waiting = None
            self._lost()
            raise SyncHelperGone(f"the sync helper has exited ({exc.strerror})") from None
        answer = await waiting
        code, nanoseconds = ANSWER.unpack(answer)
        if code:
            raise OSError(code, os.strerror(code))
        return float(nanoseconds) / 1e9

    def _on_answer(self) -> None:
        try:
            data = os.read(self._answers, 4096)
        except BlockingIOError:
            return
        if not data:
            self._lost()
            return
        self._buffer += data
        if len(self._buffer) >= ANSWER.size and self._waiting is not None:
            answer, self._buffer = self._buffer[: ANSWER.size], self._buffer[ANSWER.size :]
            waiting, self._waiting = self._waiting, None
            if not waiting.done():
                waiting.set_result(answer)

    def _lost(self) -> None:
        if self._gone:
            return
        self._gone = True
        self._loop.remove_reader(self._answers)
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting.done():
            code = self._process.poll()
            waiting.set_exception(SyncHelperGone(f"the sync helper exited with {code}"))

    def close(self, timeout_s: float = 5.0) -> None:
        """Close its input (it exits) and reap it."""
        if not self._gone:
            self._gone = True
            self._loop.remove_reader(self._answers)
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe is not None:
                pipe.close()
        try:
            self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def serve(directory: Path) -> None:
    """The helper's loop: answer each request until the input closes."""
    path = directory / CURRENT_NAME
    generation: int | None = None
    fd = -1
    while request := _read_exactly(0, REQUEST.size):
        (wanted,) = REQUEST.unpack(request)
        started = time.perf_counter_ns()
        try:
            if wanted != generation:
                if fd >= 0:
                    os.close(fd)
                    fd = -1
                fd = os.open(path, os.O_RDONLY)
                generation = wanted
            os.fdatasync(fd)
            code = 0
        except OSError as exc:
            code = exc.errno or errno.EIO
        # 12 bytes to a pipe: one write, whole (under PIPE_BUF), as the request's is.
        os.write(1, ANSWER.pack(code, time.perf_counter_ns() - started))


def _read_exactly(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            return b""
        data += chunk
    return data


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # BrokenPipeError: the engine went away while an answer was on its way.
    with contextlib.suppress(BrokenPipeError):
        serve(Path(sys.argv[1]))
