"""Holes in a bar series: where consecutive bars are more than one interval apart, and how
many bars are missing there. Bars off the interval's grid are counted too (a 1m series
with a bar at 00:00:30). Pure numpy over the times; nothing is read or written."""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Gap:
    after_ns: int  # the last bar before the hole
    before_ns: int  # the first bar after it
    missing: int  # bars that would fit in between


@dataclass(frozen=True)
class Continuity:
    bars: int
    start_ns: int | None
    end_ns: int | None
    interval_ns: int
    gaps: tuple[Gap, ...]
    off_grid: int  # bars whose distance from the first is not a whole number of intervals

    @property
    def missing(self) -> int:
        return sum(gap.missing for gap in self.gaps)

    @property
    def expected(self) -> int:
        """Bars from the first to the last with none missing."""
        if self.start_ns is None or self.end_ns is None:
            return 0
        return (self.end_ns - self.start_ns) // self.interval_ns + 1


def check_continuity(ts_ns: npt.NDArray[np.int64], interval_ns: int) -> Continuity:
    """`ts_ns` strictly increasing (the store keeps it so)."""
    if len(ts_ns) == 0:
        return Continuity(0, None, None, interval_ns, (), 0)
    steps = np.diff(ts_ns)
    holes = np.flatnonzero(steps > interval_ns)
    gaps = tuple(
        Gap(int(ts_ns[i]), int(ts_ns[i + 1]), int((steps[i] - 1) // interval_ns)) for i in holes
    )
    off_grid = int(np.count_nonzero((ts_ns - ts_ns[0]) % interval_ns))
    return Continuity(len(ts_ns), int(ts_ns[0]), int(ts_ns[-1]), interval_ns, gaps, off_grid)
