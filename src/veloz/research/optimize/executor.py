"""Where evaluations run: a `SweepExecutor` maps a function over chunks of work and yields
the results in the order of the chunks, whatever order they finish in.

- `InlineExecutor`: in the calling process (one worker: no pool to start).
- `LocalExecutor`: a `ProcessPoolExecutor` (forkserver), one process per core by default.
- `RayExecutor`: Ray tasks, on a cluster (`address`) or on a local instance started for
  the run; the same code scales out without change.

Each executor is given the `shared` object once (a pool worker's initializer, Ray's object
store) and calls `fn(shared, chunk)`: the bars cross to a worker once, not per chunk.
"""

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from enum import StrEnum
from typing import Any, Protocol, TypeVar

C = TypeVar("C")
R = TypeVar("R")


class ExecutorKind(StrEnum):
    LOCAL = "local"
    RAY = "ray"


class ExecutorUnavailable(RuntimeError):
    """The executor could not start (Ray not installed, a cluster not reachable)."""


class SweepExecutor(Protocol):
    workers: int

    def map(self, fn: Callable[[Any, C], R], chunks: Sequence[C]) -> Iterator[R]:
        """`fn(shared, chunk)` for each chunk, results in chunk order. Stopping the
        iteration early abandons the chunks not yet started."""
        ...

    def close(self) -> None: ...


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class InlineExecutor:
    workers = 1

    def __init__(self, shared: Any) -> None:
        self._shared = shared

    def map(self, fn: Callable[[Any, C], R], chunks: Sequence[C]) -> Iterator[R]:
        for chunk in chunks:
            yield fn(self._shared, chunk)

    def close(self) -> None:
        pass


# A pool worker's copy of the shared object, set once by the pool's initializer.
_in_worker: dict[str, Any] = {}


def _install(shared: Any) -> None:
    _in_worker["shared"] = shared


def _call(fn: Callable[[Any, C], R], chunk: C) -> R:
    return fn(_in_worker["shared"], chunk)


class LocalExecutor:
    """A process pool. Forkserver: workers start from a clean process (no copy of the
    caller's threads or event loop), faster than spawn once the server runs."""

    def __init__(self, shared: Any, workers: int) -> None:
        self.workers = workers
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=_install,
            initargs=(shared,),
        )

    def map(self, fn: Callable[[Any, C], R], chunks: Sequence[C]) -> Iterator[R]:
        futures: list[Future[R]] = [self._pool.submit(_call, fn, chunk) for chunk in chunks]
        taken = 0
        try:
            for future in futures:
                yield future.result()
                taken += 1
        finally:
            for future in futures[taken:]:
                future.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class RayExecutor:
    """Ray tasks of one CPU each. `address=None` starts a local instance for the run (2
    CPUs unless `workers` says otherwise, no dashboard) and stops it at the end; with an
    address the cluster is joined and left running."""

    def __init__(self, shared: Any, workers: int | None, address: str | None) -> None:
        try:
            import ray  # noqa: PLC0415 - an optional extra (veloz[ray]), slow to import
        except ImportError:
            raise ExecutorUnavailable(
                "the ray executor needs Ray: pip install 'veloz[ray]'"
            ) from None
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is None:
                options["num_cpus"] = workers or 2
            try:
                ray.init(address=address, **options)
            except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError...
                where = address or "a local instance"
                raise ExecutorUnavailable(f"cannot start Ray on {where}: {exc}") from exc
        cpus = ray.cluster_resources().get("CPU", 1)  # type: ignore[no-untyped-call]
        self.workers = workers or max(1, int(cpus))
        self._shared = ray.put(shared)
        self._task: Any = ray.remote(num_cpus=1)(_ray_call)

    def map(self, fn: Callable[[Any, C], R], chunks: Sequence[C]) -> Iterator[R]:
        refs = [self._task.remote(fn, self._shared, chunk) for chunk in chunks]
        taken = 0
        try:
            for ref in refs:
                yield self._ray.get(ref)
                taken += 1
        finally:
            # Only the tasks not collected: cancelling a finished task can crash Ray 2.x's
            # core worker ("Tried to complete task that was not pending").
            for ref in refs[taken:]:
                self._ray.cancel(ref)

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def _ray_call(fn: Callable[[Any, C], R], shared: Any, chunk: C) -> R:
    return fn(shared, chunk)


def open_executor(
    kind: ExecutorKind, shared: Any, workers: int | None = None, address: str | None = None
) -> SweepExecutor:
    if kind is ExecutorKind.RAY:
        return RayExecutor(shared, workers, address)
    count = workers or default_workers()
    return InlineExecutor(shared) if count == 1 else LocalExecutor(shared, count)
