"""The circuit breaker: too many rejections or venue errors within a window, or a loss over
a limit within a window, halts trading for a cool-down. It decides when to trip and when a
cool-down is over; the engine sets the HALTED mode (journaled) and lifts it."""

from collections import deque
from decimal import Decimal

from veloz.risk.limits import BreakerLimits

NS = 1_000_000_000


class CircuitBreaker:
    def __init__(self) -> None:
        self._rejections: deque[int] = deque()
        self._venue_errors: deque[int] = deque()
        self._equity: deque[tuple[int, Decimal]] = deque()
        self.tripped_until_ns: int | None = None
        self.reason = ""
        self.trips = 0
        # `loss_window_s` of the last limits seen, in ns: the Decimal-to-int conversion
        # costs more than the rest of `note_equity`, which runs on every quote. Limits are
        # frozen, so it is redone only when a reload hands over another object.
        self._loss_window: tuple[BreakerLimits | None, int] = (None, 0)

    @property
    def tripped(self) -> bool:
        return self.tripped_until_ns is not None

    def note_rejection(self, ts_ns: int, limits: BreakerLimits) -> str | None:
        """Count a rejection; the trip reason if this one trips the breaker."""
        count = _count_in_window(self._rejections, ts_ns, limits.window_s)
        if limits.max_rejections is not None and count > limits.max_rejections:
            return self._trip(ts_ns, limits, f"{count} rejections within {limits.window_s} s")
        return None

    def note_venue_error(self, ts_ns: int, limits: BreakerLimits) -> str | None:
        count = _count_in_window(self._venue_errors, ts_ns, limits.window_s)
        if limits.max_venue_errors is not None and count > limits.max_venue_errors:
            return self._trip(ts_ns, limits, f"{count} venue errors within {limits.window_s} s")
        return None

    def note_equity(self, ts_ns: int, equity: Decimal, limits: BreakerLimits) -> str | None:
        """Track equity; trip if it fell more than `max_loss` from its high in the window."""
        seen, window_ns = self._loss_window
        if limits is not seen:
            window_ns = int(limits.loss_window_s * NS)
            self._loss_window = (limits, window_ns)
        horizon = ts_ns - window_ns
        history = self._equity
        while history and history[0][0] < horizon:
            history.popleft()
        history.append((ts_ns, equity))
        if limits.max_loss is None:
            return None
        high = max(value for _, value in self._equity)
        if high - equity > limits.max_loss:
            return self._trip(
                ts_ns,
                limits,
                f"equity fell {high - equity} within "
                f"{limits.loss_window_s} s (limit {limits.max_loss})",
            )
        return None

    def cooled_down(self, now_ns: int) -> bool:
        return self.tripped_until_ns is not None and now_ns >= self.tripped_until_ns

    def reset(self) -> None:
        """Close the breaker and forget what tripped it (an admin's reset, or a cool-down)."""
        self._rejections.clear()
        self._venue_errors.clear()
        self._equity.clear()
        self.tripped_until_ns = None
        self.reason = ""

    def _trip(self, ts_ns: int, limits: BreakerLimits, reason: str) -> str | None:
        if self.tripped:
            return None  # already halted: one trip, one mode change
        self.tripped_until_ns = ts_ns + int(limits.cooldown_s * NS)
        self.reason = reason
        self.trips += 1
        return reason


def _count_in_window(events: deque[int], ts_ns: int, window_s: Decimal) -> int:
    events.append(ts_ns)
    horizon = ts_ns - int(window_s * NS)
    while events and events[0] < horizon:
        events.popleft()
    return len(events)
