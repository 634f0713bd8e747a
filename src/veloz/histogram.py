"""Histograms kept as plain numbers by the components that time things (the journal, the
engine, the HTTP layer); the metrics module exports them, so no component depends on a
metrics library and none depends on another to count."""

from bisect import bisect_left
from dataclasses import dataclass, field

LATENCY_BUCKETS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


@dataclass(slots=True)
class Histogram:
    """Cumulative-bucket histogram in the Prometheus sense; `counts[i]` counts values
    <= `bounds[i]`, the last slot counts the rest (+Inf)."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1
