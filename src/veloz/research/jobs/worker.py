"""The worker process of one job: read the request, check it again, run it, write the
results into the job's directory, and tell the supervisor how far it got.

It runs in a process group of its own, so that cancelling the job also ends whatever it
started (an optimisation's process pool), and it dies with the engine (Linux's parent
death signal) instead of running on unseen. Messages to the supervisor, over a pipe:

    ("progress", done, total)   at most ten a second
    ("done",)                   the results are on disk
    ("failed", reason)          the run raised; the reason is for the job's record
"""

import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec

from veloz.backtest.run import BacktestRequest, prepare
from veloz.research.jobs.records import JobKind
from veloz.research.jobs.sources import DataSources
from veloz.research.jobs.store import write_atomically

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_PROGRESS_EVERY_S = 0.1


@dataclass(frozen=True)
class WorkerTask:
    """What a worker needs, all of it picklable (the worker is a spawned interpreter)."""

    kind: JobKind
    request: bytes  # the request as JSON, already checked once by the service
    directory: str
    data_dir: str
    search_path: tuple[str, ...]
    max_evaluations: int
    parent_pid: int


def main(task: WorkerTask, conn: Connection) -> None:
    """The worker's entry point (`multiprocessing.Process(target=main)`)."""
    _detach(task.parent_pid)
    try:
        run(task, _throttled(conn))
    except BaseException as exc:
        conn.send(("failed", failure_reason(exc)))
        conn.close()
        sys.exit(1)
    conn.send(("done",))
    conn.close()


def run(task: WorkerTask, progress: Callable[[int, int], None]) -> None:
    directory = Path(task.directory)
    sources = DataSources(Path(task.data_dir))
    if task.kind is JobKind.BACKTEST:
        _backtest(task, directory, sources, progress)
    else:
        _optimization(task, directory, sources, progress)


def _backtest(
    task: WorkerTask, directory: Path, sources: DataSources, progress: Callable[[int, int], None]
) -> None:
    request = msgspec.json.decode(task.request, type=BacktestRequest)
    outcome = prepare(request, task.search_path, read_source=sources).run(progress)
    _write_json(directory / "summary.json", outcome.summary)
    # Here, not at the top: the engine imports this module; the report (jinja2, the charts)
    # is needed only in the worker.
    from veloz.backtest.report import render_backtest_report  # noqa: PLC0415

    html = render_backtest_report(outcome)
    write_atomically(directory / "report.html", lambda path: path.write_text(html, "utf-8"))


def _optimization(
    task: WorkerTask, directory: Path, sources: DataSources, progress: Callable[[int, int], None]
) -> None:
    # Here, not at the top: the engine imports this module, and need not import numba.
    from veloz.research.optimize import (  # noqa: PLC0415
        OptimizationRequest,
        prepare_optimization,
        write,
    )

    request = msgspec.json.decode(task.request, type=OptimizationRequest)
    prepared = prepare_optimization(
        request,
        max_evaluations=task.max_evaluations,
        search_path=task.search_path,
        read_source=sources,
    )
    progress(0, prepared.planned)
    write(prepared.run(progress), directory)


def failure_reason(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _write_json(path: Path, value: Any) -> None:
    encoded = msgspec.json.format(msgspec.json.encode(value)) + b"\n"
    write_atomically(path, lambda partial: partial.write_bytes(encoded))


def _detach(parent_pid: int) -> None:
    """A process group of its own, ended as a whole on SIGTERM: by a cancel, or by Linux
    when the engine dies (the parent death signal). What the worker started (an
    optimisation's process pool, which has no such signal of its own) ends with it."""
    os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, _end_group)
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:  # the engine died before the signal was armed
        _end_group()


def _end_group(*_: object) -> None:
    os.killpg(0, signal.SIGKILL)


def _throttled(conn: Connection) -> Callable[[int, int], None]:
    last = 0.0

    def progress(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= _PROGRESS_EVERY_S or done >= total:
            last = now
            conn.send(("progress", done, total))

    return progress
