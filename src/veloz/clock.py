"""Clocks. Live code reads wall time; tests and backtests drive a simulated clock, so the
kernel never calls time.time_ns() itself."""

import time
from typing import Protocol


class Clock(Protocol):
    def time_ns(self) -> int: ...


class LiveClock:
    def time_ns(self) -> int:
        return time.time_ns()


class SimulatedClock:
    """A clock that only moves when told to; it never goes backwards."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def time_ns(self) -> int:
        return self._now

    def advance_to(self, ts_ns: int) -> None:
        if ts_ns < self._now:
            raise ValueError(f"clock cannot go back from {self._now} to {ts_ns}")
        self._now = ts_ns

    def advance(self, delta_ns: int) -> None:
        self.advance_to(self._now + delta_ns)
