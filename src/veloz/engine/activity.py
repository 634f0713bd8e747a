"""The recent activity the transports replay: the last journaled order events (for
`/api/orders` and SSE resume, keyed by journal sequence, which is unique across restarts)
and the last fills (for `/api/trades`). Bounded rings; history beyond them is the journal's
and, later, the history store's."""

from collections import deque
from itertools import islice, takewhile

from veloz.engine.bus import BusMessage, Journaled
from veloz.model.events import OrderDenied, OrderEvent, OrderFilled


class ActivityLog:
    def __init__(self, max_events: int = 10_000, max_fills: int = 1_000) -> None:
        self._events: deque[Journaled] = deque(maxlen=max_events)
        self._fills: deque[Journaled] = deque(maxlen=max_fills)
        # Sequences are not contiguous here (checkpoints, mode changes take numbers too),
        # so what has left the ring is tracked, not inferred.
        self._evicted_through = 0

    def on_bus(self, message: BusMessage) -> None:
        if isinstance(message, Journaled):
            self.record(message)

    def starts_after(self, seq: int) -> None:
        """Nothing at or before `seq` is held (the journal was replayed from a checkpoint
        there): resuming from an older id must be told to re-fetch state."""
        self._evicted_through = max(self._evicted_through, seq)

    def record(self, message: Journaled) -> None:
        event = message.event
        if not isinstance(event, OrderEvent) or isinstance(event, OrderDenied):
            return
        if len(self._events) == self._events.maxlen:
            self._evicted_through = self._events[0].seq
        self._events.append(message)
        if isinstance(event, OrderFilled):
            self._fills.append(message)

    def recent_events(self, limit: int) -> list[Journaled]:
        """Newest first."""
        return list(islice(reversed(self._events), limit))

    def recent_fills(self, limit: int) -> list[OrderFilled]:
        """Newest first."""
        return [m.event for m in islice(reversed(self._fills), limit)]  # type: ignore[misc]

    @property
    def last_seq(self) -> int | None:
        return self._events[-1].seq if self._events else None

    def since(self, seq: int) -> list[Journaled] | None:
        """Events after `seq`, oldest first; None if events after `seq` have already left
        the ring (the caller must re-fetch state instead of resuming)."""
        if seq < self._evicted_through:
            return None
        newer = list(takewhile(lambda m: m.seq > seq, reversed(self._events)))
        newer.reverse()
        return newer
