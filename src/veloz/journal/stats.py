"""Journal counters (`veloz_wal_*`). Plain numbers kept by the journal; the metrics module
exports them, so the journal does not depend on a metrics library."""

from dataclasses import dataclass, field

from veloz.histogram import Histogram

FSYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


@dataclass(slots=True)
class JournalStats:
    entries_written: int = 0
    bytes_written: int = 0
    rotations: int = 0
    corrupted_entries: int = 0
    checkpoints: int = 0
    replayed_entries: int = 0
    replay_seconds: float = 0.0
    torn_tail_bytes: int = 0
    segments_deleted: int = 0
    fsync_seconds: Histogram = field(default_factory=lambda: Histogram(FSYNC_BUCKETS))
    batch_size: Histogram = field(default_factory=lambda: Histogram(BATCH_BUCKETS))
