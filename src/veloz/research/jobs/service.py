"""The job service: checks and queues jobs, runs them in worker processes (at most
`max_jobs` at once), follows them, cancels and deletes them.

Its methods block (they read data to check a request, and files): the API calls them
off the event loop. One supervisor thread starts the workers and waits on them (their
pipes and exit sentinels); it alone moves a started job to a final state, so that a
cancel, a crash and a normal end cannot race. The records are kept in memory, loaded
once from disk, and written through on every change of state; progress lives in memory.
"""

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from veloz.backtest.data import BarDataError
from veloz.backtest.run import BacktestRequest, prepare
from veloz.config import Settings
from veloz.model.errors import CommandRejected, ErrorCode
from veloz.research.jobs import worker
from veloz.research.jobs.records import (
    JobKind,
    JobProgress,
    JobRecord,
    JobState,
    is_job_id,
    new_job_id,
)
from veloz.research.jobs.sources import DataSources
from veloz.research.jobs.store import JobStore

logger = logging.getLogger(__name__)

INTERRUPTED_BY_RESTART = "interrupted by a restart"
INTERRUPTED_BY_STOP = "interrupted: the engine stopped"
# A cancelled worker gets SIGTERM, then SIGKILL if it is still there after this.
_KILL_AFTER_S = 0.5
_CANCEL_WAIT_S = 5.0


@dataclass(frozen=True)
class JobsConfig:
    directory: Path  # VELOZ_RESEARCH_DIR
    data_dir: Path  # VELOZ_DATA_DIR: what jobs may read besides the data store
    max_jobs: int = 2
    max_evaluations: int = 100_000
    search_path: tuple[str, ...] = ()
    # An optimisation's `workers` above this is refused: a request may not start more
    # processes than the machine has cores.
    max_workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    # Where `executor: ray` optimisations run (VELOZ_RESEARCH_RAY_ADDRESS); None: a local
    # Ray instance.
    ray_address: str | None = None

    @classmethod
    def of(cls, settings: Settings) -> "JobsConfig":
        return cls(
            directory=settings.research_directory.resolve(),
            data_dir=settings.data_directory.resolve(),
            max_jobs=settings.research_max_jobs,
            max_evaluations=settings.research_max_evaluations,
            search_path=tuple(p for p in settings.strategy_path.split(":") if p),
            ray_address=settings.research_ray_address,
        )


@dataclass
class _Running:
    """A started job's worker, as the supervisor follows it."""

    process: BaseProcess
    conn: Connection | None  # None once the worker closed its end
    outcome: tuple[Any, ...] | None = None  # ("done",) or ("failed", reason)
    stop_reason: str | None = None  # set by cancel (None) or close (INTERRUPTED_BY_STOP)
    stopping: bool = False
    signalled_ns: int = 0


Key = tuple[JobKind, str]
_Request = TypeVar("_Request", bound=msgspec.Struct)


class JobService:
    def __init__(self, config: JobsConfig, now_ns: Callable[[], int] = time.time_ns) -> None:
        self.config = config
        self.store = JobStore(config.directory)
        self._now_ns = now_ns
        self._sources = DataSources(config.data_dir)
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._records: dict[Key, JobRecord] | None = None  # loaded on first use
        self._running: dict[Key, _Running] = {}
        self._supervisor: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1
        self._closing = False

    # -- the operations the API calls ----------------------------------------------------

    def submit(self, kind: JobKind, body: bytes, actor: str) -> JobRecord:
        """Check the request as the worker will run it (strategy, parameters and their
        bounds, costs, the data and its period, an optimisation's size), then queue it.
        Bad input raises CommandRejected and nothing is queued."""
        request = self.check(kind, body)
        record = JobRecord(
            id=new_job_id(),
            kind=kind,
            state=JobState.QUEUED,
            actor=actor,
            created_ns=self._now_ns(),
            request=msgspec.to_builtins(request),
        )
        with self._lock:
            if self._closing:
                raise CommandRejected("the engine is stopping", code=ErrorCode.SHUTTING_DOWN)
            self._save(record)
            self._ensure_supervisor()
            self._wake()
        logger.info("%s job %s queued by %s", kind, record.id, actor)
        return record

    def get(self, kind: JobKind, job_id: str) -> JobRecord:
        with self._lock:
            return self._find(kind, job_id)

    def list(self, kind: JobKind, limit: int | None = None) -> list[JobRecord]:
        """Newest first."""
        with self._lock:
            found = [r for (k, _), r in self._loaded().items() if k is kind]
        found.sort(key=lambda r: (r.created_ns, r.id), reverse=True)
        return found[:limit] if limit is not None else found

    def summary(self, kind: JobKind, job_id: str) -> Any | None:
        """A done job's summary (summary.json), None before."""
        record = self.get(kind, job_id)
        path = self.store.file(kind, job_id, "summary.json")
        if record.state is not JobState.DONE or path is None:
            return None
        try:
            return msgspec.json.decode(path.read_bytes())
        except FileNotFoundError:  # deleted meanwhile
            return None

    def result_file(self, kind: JobKind, job_id: str, name: str) -> Path:
        """One of a done job's files (report.html, results.csv), or NOT_FOUND saying why."""
        record = self.get(kind, job_id)
        path = self.store.file(kind, job_id, name)
        if path is None:
            why = "is not done" if record.state is not JobState.DONE else "has none"
            raise CommandRejected(
                f"{kind} job {job_id} {why}: no {name} (state {record.state})",
                code=ErrorCode.NOT_FOUND,
            )
        return path

    def cancel(self, kind: JobKind, job_id: str) -> JobRecord:
        """A queued job is cancelled at once; a running one's worker (and what it
        started) is terminated, and the answer waits until it is gone. A finished job
        cannot be cancelled (BAD_STATE)."""
        with self._lock:
            record = self._find(kind, job_id)
            if record.state.final:
                raise CommandRejected(
                    f"{kind} job {job_id} is already {record.state}", code=ErrorCode.BAD_STATE
                )
            if record.state is JobState.QUEUED:
                return self._finish(record, JobState.CANCELLED)
            self._stop((kind, job_id), None)
            return self._await_final((kind, job_id))

    def delete(self, kind: JobKind, job_id: str) -> JobRecord:
        """Forget the job and delete its files; a queued or running job is cancelled
        first. The answer is the record as it was last."""
        with self._lock:
            record = self._find(kind, job_id)
            key = (kind, job_id)
            if record.state is JobState.QUEUED:
                record = self._finish(record, JobState.CANCELLED)
            elif record.state is JobState.RUNNING:
                self._stop(key, None)
                record = self._await_final(key)
            del self._loaded()[key]
            self.store.delete(kind, job_id)
        logger.info("%s job %s deleted", kind, job_id)
        return record

    def close(self) -> None:
        """Stop taking jobs; running ones are killed and, like queued ones, marked failed
        (interrupted). Called when the engine stops."""
        with self._lock:
            self._closing = True
            if self._records is not None:
                for key, record in list(self._records.items()):
                    if record.state is JobState.QUEUED:
                        self._finish(record, JobState.FAILED, INTERRUPTED_BY_STOP)
                    elif key in self._running:
                        self._stop(key, INTERRUPTED_BY_STOP, at_once=True)
            self._wake()
            supervisor = self._supervisor
        if supervisor is not None:
            supervisor.join(_CANCEL_WAIT_S)
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)

    # -- checks ---------------------------------------------------------------------------

    def check(self, kind: JobKind, body: bytes) -> msgspec.Struct:
        """The request as a worker would run it (the server's Ray address filled in), or
        CommandRejected naming what is wrong. Reads the data; starts nothing."""
        try:
            if kind is JobKind.BACKTEST:
                backtest = _decode(body, BacktestRequest)
                prepare(backtest, self.config.search_path, read_source=self._sources)
                return backtest
            return self._check_optimization(body)
        except BarDataError as exc:
            raise CommandRejected(str(exc)) from None

    def _check_optimization(self, body: bytes) -> msgspec.Struct:
        # Here, not at the top: the optimiser brings numba, which the engine need not
        # import to start (only to check an optimisation).
        from veloz.research.optimize import (  # noqa: PLC0415
            OptimizationRequest,
            prepare_optimization,
        )

        request = _decode(body, OptimizationRequest)
        if request.address is not None:
            raise CommandRejected(
                "address is the server's to choose (VELOZ_RESEARCH_RAY_ADDRESS): "
                "leave it out and ask for executor ray"
            )
        if request.executor == "ray":
            request = msgspec.structs.replace(request, address=self.config.ray_address)
        if request.workers is not None and request.workers > self.config.max_workers:
            raise CommandRejected(
                f"workers {request.workers} is more than the {self.config.max_workers} "
                "cores this server has"
            )
        prepare_optimization(
            request,
            max_evaluations=self.config.max_evaluations,
            search_path=self.config.search_path,
            read_source=self._sources,
        )
        return request

    # -- records (under the lock) ---------------------------------------------------------

    def _loaded(self) -> dict[Key, JobRecord]:
        """The records, read from disk the first time. Jobs a previous run left queued or
        running were lost with it: they are marked failed (interrupted)."""
        if self._records is None:
            self._records = {}
            for kind in JobKind:
                for record in self.store.records(kind):
                    self._records[(kind, record.id)] = record
                    if not record.state.final:
                        self._finish(record, JobState.FAILED, INTERRUPTED_BY_RESTART)
        return self._records

    def _find(self, kind: JobKind, job_id: str) -> JobRecord:
        record = self._loaded().get((kind, job_id)) if is_job_id(job_id) else None
        if record is None:
            raise CommandRejected(f"no {kind} job {job_id}", code=ErrorCode.NOT_FOUND)
        return record

    def _save(self, record: JobRecord, *, durable: bool = True) -> JobRecord:
        self._loaded()[(record.kind, record.id)] = record
        if durable:
            self.store.save(record)
        self._changed.notify_all()
        return record

    def _finish(self, record: JobRecord, state: JobState, error: str | None = None) -> JobRecord:
        logger.info("%s job %s %s%s", record.kind, record.id, state, f": {error}" if error else "")
        return self._save(
            msgspec.structs.replace(
                record, state=state, error=error, finished_ns=self._now_ns(), pid=None
            )
        )

    def _await_final(self, key: Key) -> JobRecord:
        deadline = time.monotonic() + _CANCEL_WAIT_S
        while not (record := self._loaded()[key]).state.final:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CommandRejected(
                    f"{key[0]} job {key[1]} did not stop in {_CANCEL_WAIT_S:g} s",
                    code=ErrorCode.INTERNAL_ERROR,
                )
            self._changed.wait(min(left, _KILL_AFTER_S / 2))
        return record

    # -- workers (under the lock) -------------------------------------------------------

    def _ensure_supervisor(self) -> None:
        if self._supervisor is None:
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            self._supervisor = threading.Thread(
                target=self._supervise, name="veloz-research-jobs", daemon=True
            )
            self._supervisor.start()

    def _wake(self) -> None:
        if self._supervisor is not None:
            os.write(self._wake_w, b"!")

    def _stop(self, key: Key, reason: str | None, *, at_once: bool = False) -> None:
        running = self._running[key]
        running.stopping, running.stop_reason = True, reason
        running.signalled_ns = self._now_ns()
        _signal_group(running.process, signal.SIGKILL if at_once else signal.SIGTERM)
        self._wake()

    def _start_queued(self) -> None:
        queued = sorted(
            (r for r in self._loaded().values() if r.state is JobState.QUEUED),
            key=lambda r: r.created_ns,
        )
        for record in queued[: max(0, self.config.max_jobs - len(self._running))]:
            self._start(record)

    def _start(self, record: JobRecord) -> None:
        directory = self.store.directory(record.kind, record.id)
        task = worker.WorkerTask(
            kind=record.kind,
            request=msgspec.json.encode(record.request),
            directory=str(directory),
            data_dir=str(self.config.data_dir),
            search_path=self.config.search_path,
            max_evaluations=self.config.max_evaluations,
            parent_pid=os.getpid(),
        )
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=worker.main, args=(task, send), name=f"veloz-job-{record.id}"
        )
        try:
            process.start()
        except Exception as exc:
            receive.close()
            self._finish(record, JobState.FAILED, f"the worker could not start: {exc}")
            return
        finally:
            send.close()
        self._running[(record.kind, record.id)] = _Running(process, receive)
        self._save(
            msgspec.structs.replace(
                record, state=JobState.RUNNING, started_ns=self._now_ns(), pid=process.pid
            )
        )
        logger.info("%s job %s running in process %s", record.kind, record.id, process.pid)

    # -- the supervisor thread ------------------------------------------------------------

    def _supervise(self) -> None:
        with self._lock:
            while True:
                if not self._closing:
                    self._start_queued()
                elif not self._running:
                    return
                waiting: list[Any] = [self._wake_r]
                for running in self._running.values():
                    waiting.append(running.process.sentinel)
                    if running.conn is not None:
                        waiting.append(running.conn)
                self._lock.release()
                try:
                    ready = set(wait(waiting, timeout=_KILL_AFTER_S))
                finally:
                    self._lock.acquire()
                self._after_wait(ready)

    def _after_wait(self, ready: set[Any]) -> None:
        if self._wake_r in ready:
            while True:
                try:
                    if not os.read(self._wake_r, 4096):
                        break
                except BlockingIOError:
                    break
        for key, running in list(self._running.items()):
            if running.conn is not None and (
                running.conn in ready or running.process.sentinel in ready
            ):
                self._receive(key, running)
            if running.process.sentinel in ready:
                self._ended(key, running)
            elif running.stopping and self._now_ns() - running.signalled_ns > _KILL_AFTER_S * 1e9:
                _signal_group(running.process, signal.SIGKILL)

    def _receive(self, key: Key, running: _Running) -> None:
        assert running.conn is not None
        try:
            while running.conn.poll():
                message = running.conn.recv()
                if message[0] == "progress":
                    record = self._loaded()[key]
                    progress = JobProgress(done=message[1], total=message[2])
                    self._save(msgspec.structs.replace(record, progress=progress), durable=False)
                else:
                    running.outcome = message
        except (EOFError, OSError):
            running.conn.close()
            running.conn = None

    def _ended(self, key: Key, running: _Running) -> None:
        process = running.process
        process.join()
        _signal_group(process, signal.SIGKILL)  # what the worker started, if left over
        exitcode = process.exitcode
        process.close()
        del self._running[key]
        if running.conn is not None:
            running.conn.close()
        record = self._loaded()[key]
        if running.stopping:
            if running.stop_reason is None:
                self._finish(record, JobState.CANCELLED)
            else:
                self._finish(record, JobState.FAILED, running.stop_reason)
        elif running.outcome == ("done",) and exitcode == 0:
            total = record.progress.total
            done = msgspec.structs.replace(record, progress=JobProgress(done=total, total=total))
            self._finish(done, JobState.DONE)
        else:
            self._finish(record, JobState.FAILED, _why(running.outcome, exitcode))


def _decode(body: bytes, kind: type[_Request]) -> _Request:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise CommandRejected(f"bad request: {exc}") from None
    except msgspec.DecodeError as exc:
        raise CommandRejected(f"the body must be JSON: {exc}", code=ErrorCode.BAD_JSON) from None


def _why(outcome: tuple[Any, ...] | None, exitcode: int | None) -> str:
    """Why a worker ended without results: what it said, else how it died."""
    if outcome is not None and outcome[0] == "failed":
        return str(outcome[1])
    if exitcode is not None and exitcode < 0:
        return f"the worker was killed by {signal.Signals(-exitcode).name}"
    return f"the worker exited with code {exitcode} before finishing"


def _signal_group(process: BaseProcess, sig: signal.Signals) -> None:
    """Signal the worker's process group (the worker and what it started); the worker
    alone if it has not made its group yet. Never another process group: the group's id
    is the worker's own pid."""
    pid = process.pid
    if pid is None:
        return
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        try:
            if process.exitcode is None:
                os.kill(pid, sig)
        except ProcessLookupError:
            pass
    except PermissionError:
        pass
