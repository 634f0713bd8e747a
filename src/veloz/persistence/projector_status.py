"""What the projector process tells the engine: its status file.

`<journal>/projector/status.json` is rewritten (a temporary file renamed over it, never
synced) by `veloz projector` a few times a second. The engine reads it for three things:
the journal's retention (never delete a segment holding `high_water + 1` or later),
`/health/ready` and `/metrics` (connected, lag, errors). A status that stops changing means
the projector is down: the engine says so and its retention keeps waiting at the last high
water. A status lost with a power cut is read as "nothing projected": retention then keeps
everything until the projector writes again, which is safe.
"""

import os
import time
from pathlib import Path

import msgspec

from veloz.journal.segments import PROJECTOR_DIR

STATUS_NAME = "status.json"
STATUS_INTERVAL_S = 0.2
# Not rewritten for this long: the projector is taken as down.
STALE_AFTER_S = 5.0


class PublisherStatus(msgspec.Struct, kw_only=True):
    """The Redis publisher's figures when it runs in the projector's process (the engine
    shows them on /health/ready and /metrics, and keeps the journal it still needs)."""

    connected: bool = False
    published_seq: int = 0
    published_entries: int = 0
    republishes: int = 0
    missing_entries: int = 0
    failures: int = 0
    last_error: str = ""
    next_needed_seq: int = 1
    batch_counts: list[int] = msgspec.field(default_factory=list)  # LATENCY_BUCKETS + inf
    batch_total_s: float = 0.0


class ProjectorStatus(msgspec.Struct, kw_only=True):
    pid: int
    ts_ns: int  # wall time of this write
    # Whether `high_water` was read from the store by this projector (until then it says
    # nothing: after a store restore the store may be behind any earlier status).
    resumed: bool = False
    high_water: int = 0
    connected: bool = False
    last_error: str = ""
    projected_entries: int = 0
    batches: int = 0
    failures: int = 0
    missing_entries: int = 0
    skipped_entries: int = 0
    audit_imported: int = 0
    redis: PublisherStatus | None = None  # when it publishes to Redis

    def fresh(self, now_ns: int | None = None) -> bool:
        now = time.time_ns() if now_ns is None else now_ns
        return now - self.ts_ns <= STALE_AFTER_S * 1e9


def projector_dir(journal_dir: Path) -> Path:
    return journal_dir / PROJECTOR_DIR


def write_status(journal_dir: Path, status: ProjectorStatus) -> None:
    directory = projector_dir(journal_dir)
    temporary = directory / f".{STATUS_NAME}.{os.getpid()}"
    temporary.write_bytes(msgspec.json.encode(status))
    os.replace(temporary, directory / STATUS_NAME)


def read_status(journal_dir: Path) -> ProjectorStatus | None:
    """The newest status, or None if the projector never wrote one (or it is unreadable)."""
    try:
        data = (projector_dir(journal_dir) / STATUS_NAME).read_bytes()
        return msgspec.json.decode(data, type=ProjectorStatus)
    except (OSError, msgspec.DecodeError):
        return None
