"""The gateway's follower of the engine's Redis stream (`veloz.persistence.redis_events`
writes it): every entry, in sequence order, rebuilt into the engine's own bus message
(`Journaled`) and handed to the gateway.

At start it reads the newest `backlog` entries (so a client resuming on this replica
finds its events), then blocks on `XREAD` for new ones. Redis down: it retries with
backoff and says so; the stream gone (FLUSHDB) and written again: it goes on from its
last sequence. An entry whose sequence is not the next one is a gap: counted, and the
gateway is told (a resume from before it must re-fetch state).
"""

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from veloz.codec import PayloadError, decode_event, decode_msgpack
from veloz.engine.bus import Journaled
from veloz.histogram import LATENCY_BUCKETS, Histogram
from veloz.model.orders import Order
from veloz.persistence.redis_events import RedisConfig, connect

logger = logging.getLogger(__name__)

Entry = tuple[bytes, dict[bytes, bytes]]
LENGTH_EVERY_S = 5.0
# Entries applied between two turns of the event loop. Catching up (after Redis or the
# gateway was away) a read brings up to `batch` entries at once; applied in one go, they
# would reach a stream client's mailbox before it could write any, and fill it. In
# chunks, the clients the hub woke write theirs in between (`api.stream_hub.Mailbox`).
APPLY_CHUNK = 100


@dataclass(slots=True)
class FollowerStats:
    """What `/metrics` and `/health/ready` show about the stream."""

    connected: bool = False
    seq: int = 0  # the last sequence applied
    stream_seq: int = 0  # the newest sequence the stream holds, as last seen
    entries: int = 0
    gaps: int = 0
    failures: int = 0
    last_error: str = ""
    last_entry_ns: int = 0  # when the last entry was applied (wall clock)
    length: int = 0  # entries the stream holds (XLEN), looked at every few seconds
    # From the event's own time (the engine's clock when it happened) to its arrival here.
    delivery_seconds: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))

    @property
    def lag(self) -> int:
        return max(0, self.stream_seq - self.seq)


def entry_seq(entry_id: bytes) -> int:
    return int(entry_id.partition(b"-")[0])


def decode_entry(seq: int, fields: dict[bytes, bytes]) -> Journaled | None:
    """The bus message an entry was made from; None for the journal's own entries
    (checkpoints, rotations) and for entries without the event (older publishers)."""
    payload = fields.get(b"payload")
    entry_type = fields.get(b"entry_type")
    if payload is None or entry_type is None:
        return None
    event = decode_event(int(entry_type), payload)
    raw_order = fields.get(b"order")
    order = decode_msgpack(raw_order, Order) if raw_order is not None else None
    return Journaled(seq, event, order)


class StreamFollower:
    def __init__(
        self,
        config: RedisConfig,
        on_message: Callable[[Journaled], None],
        on_gap: Callable[[int], None],
        *,
        backlog: int = 10_000,
        block_ms: int = 1_000,
        batch: int = 1_000,
    ) -> None:
        self.config = config
        self.stats = FollowerStats()
        self._on_message = on_message
        self._on_gap = on_gap
        self._backlog = backlog
        self._block_ms = block_ms
        self._batch = batch
        self._client: Redis | None = None
        self._started = False
        self._length_due = 0.0
        self.ready = asyncio.Event()  # set once the backlog is read

    async def run(self, stop: asyncio.Event) -> None:
        delay = self.config.retry_initial_s
        while not stop.is_set():
            try:
                if not self._started:
                    await self._read_backlog()
                await self._read_new()
            except (RedisError, OSError) as exc:
                self._failed(exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, self.config.retry_max_s)
                continue
            delay = self.config.retry_initial_s

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def _redis(self) -> Redis:
        if self._client is None:
            self._client = connect(self.config, f"veloz-gateway-{os.getpid()}")
        return self._client

    def _failed(self, exc: BaseException) -> None:
        message = str(exc) or type(exc).__name__
        if self.stats.connected or self.stats.last_error != message:
            logger.warning("gateway: redis %s unavailable, retrying: %s", self.config.name, message)
        self.stats.connected = False
        self.stats.failures += 1
        self.stats.last_error = message

    async def _read_backlog(self) -> None:
        newest = cast(
            list[Entry], await self._redis().xrevrange(self.config.stream, count=self._backlog)
        )
        self.stats.connected = True
        entries = list(reversed(newest))
        if entries:
            first = entry_seq(entries[0][0])
            self._on_gap(first - 1)  # nothing before the backlog is held here
            self.stats.seq = first - 1
        self._apply(entries)
        self._started = True
        self.ready.set()

    async def _read_new(self) -> None:
        key = self.config.stream
        answer = cast(
            list[tuple[bytes, list[Entry]]],
            await self._redis().xread(
                {key: f"{self.stats.seq}-0"}, count=self._batch, block=self._block_ms
            ),
        )
        self.stats.connected = True
        for _stream, entries in answer:
            for start in range(0, len(entries), APPLY_CHUNK):
                if start:
                    await asyncio.sleep(0)
                self._apply(entries[start : start + APPLY_CHUNK])
        if not answer:
            await self._look_at_the_end()
        if time.monotonic() >= self._length_due:
            self._length_due = time.monotonic() + LENGTH_EVERY_S
            self.stats.length = int(await self._redis().xlen(key))

    async def _look_at_the_end(self) -> None:
        """A quiet stream: note how far it goes (for the lag figure)."""
        newest = cast(list[Entry], await self._redis().xrevrange(self.config.stream, count=1))
        self.stats.stream_seq = entry_seq(newest[0][0]) if newest else self.stats.seq

    def _apply(self, entries: list[Entry]) -> None:
        now = time.time_ns()
        for entry_id, fields in entries:
            seq = entry_seq(entry_id)
            if seq <= self.stats.seq:
                continue  # written again after a FLUSHDB: already applied
            if seq != self.stats.seq + 1 and self.stats.seq:
                self.stats.gaps += 1
                logger.error(
                    "gateway: stream %s skips from %d to %d: events in between are not here",
                    self.config.stream,
                    self.stats.seq,
                    seq,
                )
                self._on_gap(seq - 1)
            self.stats.seq = seq
            self.stats.entries += 1
            try:
                message = decode_entry(seq, fields)
            except (PayloadError, ValueError) as exc:
                logger.error("gateway: stream entry %d is unreadable: %s", seq, exc)
                continue
            if message is None:
                continue
            self.stats.delivery_seconds.observe(max(0, now - message.event.ts_ns) / 1e9)
            self._on_message(message)
        self.stats.stream_seq = max(self.stats.stream_seq, self.stats.seq)
        if entries:
            self.stats.last_entry_ns = now
