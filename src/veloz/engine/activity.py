"""The recent activity the transports replay: the last journaled order events (for
`/api/orders` and SSE resume, keyed by journal sequence, which is unique across restarts)
and the last fills (for `/api/trades`). Bounded rings, by count and, when given
`max_bytes` (its share of VELOZ_MEMORY_POOL_SIZE), by their estimated size: the oldest
leave first. History beyond them is the journal's and the history store's."""

from collections import deque
from itertools import islice, takewhile

from veloz.engine.bus import BusMessage, Journaled
from veloz.model.events import OrderDenied, OrderEvent, OrderFilled
from veloz.model.sizes import ItemSize

# The fills ring's part of `max_bytes` (it holds the same messages as the events ring
# while they are in both, so this is what fills older than the events ring may cost).
FILLS_SHARE = 0.1


class ActivityLog:
    def __init__(
        self, max_events: int = 10_000, max_fills: int = 1_000, max_bytes: int | None = None
    ) -> None:
        self._events: deque[Journaled] = deque()
        self._fills: deque[Journaled] = deque()
        self._max_events, self._max_fills = max_events, max_fills
        self._events_cap, self._fills_cap = max_events, max_fills
        self._max_bytes = max_bytes
        self._size = ItemSize()
        # Sequences are not contiguous here (checkpoints, mode changes take numbers too),
        # so what has left the ring is tracked, not inferred.
        self._evicted_through = 0

    @property
    def bytes_used(self) -> int:
        """What the rings hold, estimated (every message counted once per ring)."""
        return (len(self._events) + len(self._fills)) * self._size.bytes

    @property
    def capacity(self) -> tuple[int, int]:
        """How many events and fills the rings keep now."""
        return self._events_cap, self._fills_cap

    def _resize(self) -> None:
        """The counts that fit in `max_bytes` at the current estimate of a message."""
        if self._max_bytes is None or not self._size.bytes:
            return
        fills_bytes = int(self._max_bytes * FILLS_SHARE)
        item = self._size.bytes
        self._events_cap = min(self._max_events, max(1, (self._max_bytes - fills_bytes) // item))
        self._fills_cap = min(self._max_fills, max(1, fills_bytes // item))

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
        if self._size.observe(message):
            self._resize()
        events = self._events
        events.append(message)
        while len(events) > self._events_cap:
            self._evicted_through = events.popleft().seq
        if isinstance(event, OrderFilled):
            self._fills.append(message)
        while len(self._fills) > self._fills_cap:
            self._fills.popleft()

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
