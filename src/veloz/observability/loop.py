"""Event-loop lag: how late a timer that should fire every `interval` actually fires. A
loop that is blocked (or starved) cannot serve orders, so liveness is judged on it."""

import asyncio
import contextlib
import time


class LoopLagMonitor:
    def __init__(self, interval_s: float = 0.25) -> None:
        self._interval_s = interval_s
        self.lag_s = 0.0
        self.max_lag_s = 0.0
        self.last_sample_monotonic: float | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="veloz-loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def current_lag_s(self) -> float:
        """The last measured lag, or the time since the last sample if that is longer
        (a loop stuck right now has not sampled for a while)."""
        if self.last_sample_monotonic is None:
            return 0.0
        overdue = time.monotonic() - self.last_sample_monotonic - self._interval_s
        return max(self.lag_s, overdue)

    async def _run(self) -> None:
        while True:
            expected = time.monotonic() + self._interval_s
            await asyncio.sleep(self._interval_s)
            now = time.monotonic()
            self.lag_s = max(0.0, now - expected)
            self.max_lag_s = max(self.max_lag_s, self.lag_s)
            self.last_sample_monotonic = now
