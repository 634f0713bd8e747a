"""A deadline on strategy callbacks: one that runs longer than allowed (a loop that never
returns) is interrupted by `StrategyOverran`, raised inside it from a SIGALRM handler, so
the host stops that strategy and the engine carries on.

A signal can only interrupt Python code in the main thread, where the live engine's loop
runs; elsewhere the deadline is off (said once in the log). Arming costs two `setitimer`
calls per callback, which the live engine can afford and a backtest's bar loop cannot: a
backtest runs without it.
"""

import logging
import signal
import threading
from types import FrameType, TracebackType

logger = logging.getLogger(__name__)


class StrategyOverran(Exception):
    """A strategy callback ran past its deadline."""


class CallbackDeadline:
    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"a callback deadline must be positive, got {seconds}")
        self.seconds = seconds
        self._armed = False
        self.enabled = threading.current_thread() is threading.main_thread()
        if self.enabled:
            signal.signal(signal.SIGALRM, self._on_alarm)
        else:
            logger.warning("strategy callback deadline off: the engine is not on the main thread")

    def __enter__(self) -> None:
        if self.enabled:
            self._armed = True
            signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.enabled:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self._armed = False

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        # Only ever inside an armed callback: a late alarm after it returned is ignored.
        if self._armed:
            self._armed = False
            raise StrategyOverran(f"a callback ran for more than {self.seconds:g} s")
