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
        # Public for the backtest's bar loop, which sets it directly once it has checked
        # that its bars are in time order (an `advance_to` call per bar is measurable);
        # everything else moves the clock through `advance_to`.
        self.now_ns = start_ns

    def time_ns(self) -> int:
        return self.now_ns

    def advance_to(self, ts_ns: int) -> None:
        if ts_ns < self.now_ns:
            raise ValueError(f"clock cannot go back from {self.now_ns} to {ts_ns}")
        self.now_ns = ts_ns

    def advance(self, delta_ns: int) -> None:
        self.advance_to(self.now_ns + delta_ns)
