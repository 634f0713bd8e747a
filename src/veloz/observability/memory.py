"""VELOZ_MEMORY_POOL_SIZE: one byte budget for the engine's in-memory buffers, split in
fixed shares, and what each holds, for `/metrics`.

- `replay`: the recent order events and fills (`engine.activity`) that SSE resume,
  `/api/orders` and `/api/trades` read; the oldest leave first.
- `orders`: the final orders kept in memory beside the open ones (`engine.oms`); the
  oldest final ones leave first (open orders are state, never evicted).
- `streams`: the frames queued for SSE and WebSocket clients (the stream hub); a client
  whose frames would take the total over its share is dropped, as a slow client is, and
  resumes with `Last-Event-ID` from the replay ring.

Sizes are estimates (the deep size of a typical item, `veloz.model.sizes`), except the
streams' frames, which are counted exactly. The budget bounds these buffers, not the
process: the interpreter, the code and the state the engine cannot drop (open orders,
positions, the order book) come on top (`veloz_process_resident_memory_bytes`).
"""

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

DEFAULT_BYTES = 1 << 30
MIN_BYTES = 1 << 20
SHARES = {"replay": 0.5, "orders": 0.3, "streams": 0.2}


class MemoryPool:
    def __init__(self, limit_bytes: int = DEFAULT_BYTES) -> None:
        self.limit_bytes = limit_bytes
        self._used: dict[str, Callable[[], int]] = {}

    def share(self, buffer: str) -> int:
        """The bytes `buffer` (one of SHARES) may hold."""
        return int(self.limit_bytes * SHARES[buffer])

    def watch(self, buffer: str, used: Callable[[], int]) -> None:
        """Report what `buffer` holds by calling `used` (bytes) at each scrape."""
        self._used[buffer] = used

    def used(self) -> dict[str, int]:
        return {buffer: used() for buffer, used in self._used.items()}


class MemoryPoolCollector(Collector):
    """`veloz_memory_pool_bytes{kind="limit"|"used"}` and, per buffer,
    `veloz_memory_pool_buffer_bytes{buffer, kind="share"|"used"}`."""

    def __init__(self, pool: MemoryPool) -> None:
        self._pool = pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        used = self._pool.used()
        pool = GaugeMetricFamily(
            "veloz_memory_pool_bytes",
            "VELOZ_MEMORY_POOL_SIZE (limit) and what the bounded buffers hold (used)",
            labels=["kind"],
        )
        pool.add_metric(["limit"], self._pool.limit_bytes)
        pool.add_metric(["used"], sum(used.values()))
        yield pool
        buffers = GaugeMetricFamily(
            "veloz_memory_pool_buffer_bytes",
            "Each bounded buffer's share of the pool and what it holds",
            labels=["buffer", "kind"],
        )
        for buffer in SHARES:
            buffers.add_metric([buffer, "share"], self._pool.share(buffer))
            buffers.add_metric([buffer, "used"], used.get(buffer, 0))
        yield buffers
