"""What a job is: its kind, its state machine and the record kept of it.

queued -> running -> done | failed | cancelled
queued -> cancelled
queued | running -> failed ("interrupted ...") when the engine stopped or died first
"""

import re
import secrets
from enum import StrEnum
from typing import Any

import msgspec


class JobKind(StrEnum):
    BACKTEST = "backtest"
    OPTIMIZATION = "optimization"

    @property
    def folder(self) -> str:
        """The folder under the research directory: `backtests`, `optimizations`."""
        return f"{self.value}s"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class JobProgress(msgspec.Struct, frozen=True, kw_only=True):
    """Bars (backtest) or evaluations (optimisation) done of the total; 0/0 until the
    worker reports."""

    done: int = 0
    total: int = 0


class JobRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: JobKind
    state: JobState
    actor: str  # who submitted it, as the audit trail names them
    created_ns: int
    started_ns: int | None = None
    finished_ns: int | None = None
    progress: JobProgress = JobProgress()
    error: str | None = None  # why it failed
    pid: int | None = None  # the worker's process id while it runs
    request: dict[str, Any] = msgspec.field(default_factory=dict)  # as submitted


_ID = re.compile(r"[0-9a-f]{16}")


def new_job_id() -> str:
    return secrets.token_hex(8)


def is_job_id(text: str) -> bool:
    """Ids are what `new_job_id` makes; anything else names no job (and no path)."""
    return _ID.fullmatch(text) is not None
