"""The Redis Streams publisher: every durable journal entry, once, in order, as one stream
entry whose id is its journal sequence (`<seq>-0`), for the gateways to serve.

Like the history projector it follows the journal files up to the durable sequence (never
the order path), and the journal's retention keeps what it has not published yet. The
entry's fields are `seq`, `event` (the journaled event's name, or `Checkpoint` /
`Rotation` for the journal's own entries, so the ids have no gaps) and one field per
stream event the entry becomes on SSE and stdio (`order_update`, `fill`, `account`,
`strategy`), holding that event's JSON exactly as an SSE `data:` line carries it. Orders
are folded with the engine's own `OrderManager`, seeded from a checkpoint, so an
`order_update` shows the order as it stood right after its event.

Redis is never waited on by the engine: when it fails, the publisher retries with
backoff, and when it answers again it reads the last id the stream holds and publishes
from the next sequence; a stream that is gone (FLUSHDB, a restart without persistence) is
written again from the journal, the last `maxlen` entries, so a consumer that was within
the stream's window resumes by sequence without a gap. See docs/operations/scaling.md.
"""

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from veloz.codec import PayloadError, decode_event, decode_msgpack, encode_json, encode_msgpack
from veloz.engine.bus import Journaled
from veloz.engine.checkpoint import EngineCheckpoint
from veloz.engine.views.streams import stream_events
from veloz.histogram import LATENCY_BUCKETS, Histogram
from veloz.journal.framing import EntryType, Record, scan
from veloz.journal.segments import list_segments
from veloz.journal.tail import JournalTail
from veloz.model.errors import InvalidTransition
from veloz.model.events import Event, OrderDenied, OrderEvent, OrderSubmitted
from veloz.model.orders import Order
from veloz.oms.manager import OrderManager
from veloz.persistence.projector import sleep_unless_stopped
from veloz.persistence.projector_status import PublisherStatus, read_status
from veloz.persistence.urls import redact

logger = logging.getLogger(__name__)

Fields = dict[str, str | bytes]
DRAIN_TIMEOUT_S = 5.0  # publishing what is left at a stop
REMOTE_READ_EVERY_S = 0.5  # how often the engine reads an out-of-process publisher's status


class RedisConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Where to publish: a URL, or Sentinel (`sentinels` + `master`)."""

    url: str | None = None
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str | None = None
    password: str | None = msgspec.field(default=None)  # Sentinel mode: the master's
    stream: str = "veloz:events"
    maxlen: int = 100_000  # approximate (`MAXLEN ~`): Redis trims whole nodes
    batch_entries: int = 1_000
    # How often to look for newly durable entries when there were none.
    poll_interval_s: float = 0.005
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0
    timeout_s: float = 5.0

    def __repr__(self) -> str:  # never the password, wherever a config is printed
        return f"RedisConfig({self.name}, stream={self.stream!r})"

    @property
    def name(self) -> str:
        if self.url is not None:
            return redact(self.url)
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"sentinel {self.master} via {hosts}"


def connect(config: RedisConfig, client_name: str | None = None) -> "Redis":
    """A client for `config` (connects lazily), named `client_name` in `CLIENT LIST`. No
    retries of its own: the caller's backoff decides when to try again."""
    options: dict[str, Any] = {
        "socket_timeout": config.timeout_s,
        "socket_connect_timeout": config.timeout_s,
        "retry": Retry(NoBackoff(), 0),
    }
    if client_name is not None:
        options["client_name"] = client_name
    if config.url is not None:
        client: Redis = Redis.from_url(config.url, **options)
        return client
    assert config.master is not None
    sentinel = Sentinel(list(config.sentinels), sentinel_kwargs=options, **options)  # type: ignore[no-untyped-call]
    master: Redis = sentinel.master_for(config.master, password=config.password)
    return master


@dataclass(slots=True)
class PublisherStats:
    """What `/metrics` and `/health/ready` show about Redis."""

    connected: bool = False
    published_seq: int = 0  # the last journal sequence the stream is known to hold
    published_entries: int = 0
    republishes: int = 0  # times the stream had lost entries and was written again
    missing_entries: int = 0  # entries gone from the journal before they were published
    failures: int = 0
    last_error: str = ""
    batch_seconds: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))


@dataclass(slots=True)
class _Batch:
    entries: list[tuple[int, Fields]]
    newest_checkpoint: int | None


class _StreamGone(Exception):
    """The stream vanished under the publisher (FLUSHDB, DEL)."""


class StreamAhead(Exception):
    """The stream holds sequences this journal has not reached: another engine writes to
    the key, or the journal is not the one the stream was written from. Nothing is
    published until an operator deletes the key (it is then written again)."""


class EventFold:
    """Stream entries from journal records: orders kept with the engine's `OrderManager`
    (seeded from a checkpoint), each record turned into its fields."""

    def __init__(self) -> None:
        self.orders = OrderManager()
        self.seq = 0  # the last record applied
        self.known = False  # False until seeded: the orders at `seq` are not known yet

    def seed(self, checkpoint: EngineCheckpoint, seq: int) -> None:
        self.orders.restore(checkpoint.orders)
        self.seq = seq
        self.known = True

    def reset(self, seq: int = 0) -> None:
        """No orders, standing after entry `seq`."""
        self.orders = OrderManager()
        self.seq = seq
        self.known = True

    def apply(self, record: Record) -> Fields:
        self.seq = record.seq
        fields: Fields = {"seq": str(record.seq)}
        if record.entry_type == EntryType.Checkpoint:
            fields["event"] = "Checkpoint"
            return fields
        if record.entry_type == EntryType.Rotation:
            fields["event"] = "Rotation"
            return fields
        try:
            event = decode_event(record.entry_type, record.payload)
        except PayloadError as exc:
            logger.error("redis: journal entry %d is unreadable: %s", record.seq, exc)
            fields["event"] = "Unreadable"
            return fields
        fields["event"] = type(event).__name__
        order = self._order_after(event)
        for item in stream_events(Journaled(record.seq, event, order)):
            fields[item["type"]] = encode_json(item)
        # Last, the journaled event as the journal holds it and the order after it: a
        # gateway rebuilds the engine's bus message from these (`decode_entry`).
        fields["entry_type"] = str(int(record.entry_type))
        fields["payload"] = record.payload
        if order is not None:
            fields["order"] = encode_msgpack(order)
        return fields

    def _order_after(self, event: Event) -> Order | None:
        try:
            if isinstance(event, OrderSubmitted):
                return self.orders.add(event)
            if isinstance(event, OrderEvent) and not isinstance(event, OrderDenied):
                return self.orders.apply(event)
        except InvalidTransition:
            return None  # about an order this fold never saw: no order to show
        return None


class RemotePublisher:
    """The engine's view of the publisher when it runs in the projector's process
    (`veloz projector`): its figures from the status file, for /health/ready, /metrics and
    the journal's retention. Until that process has reported since `started_ns`, the whole
    journal is kept."""

    def __init__(
        self,
        config: RedisConfig,
        journal_dir: Path,
        durable_seq: Callable[[], int | None],
        started_ns: int,
    ) -> None:
        self.config = config
        self._dir = journal_dir
        self._durable_seq = durable_seq
        self._started_ns = started_ns
        self._stats = PublisherStats(last_error="the projector process has not reported yet")
        self._reported: PublisherStatus | None = None
        self._read_at = -1.0

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def stats(self) -> PublisherStats:
        self._refresh()
        return self._stats

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._read_at < REMOTE_READ_EVERY_S:
            return
        self._read_at = now
        status = read_status(self._dir)
        if status is None or status.redis is None or status.ts_ns < self._started_ns:
            return
        reported = self._reported = status.redis
        fresh = status.fresh()
        stats = self._stats
        stats.connected = reported.connected and fresh
        stats.last_error = reported.last_error if fresh else "projector process not running"
        stats.published_seq = reported.published_seq
        stats.published_entries = reported.published_entries
        stats.republishes = reported.republishes
        stats.missing_entries = reported.missing_entries
        stats.failures = reported.failures
        if len(reported.batch_counts) == len(stats.batch_seconds.counts):
            stats.batch_seconds.counts = list(reported.batch_counts)
            stats.batch_seconds.count = sum(reported.batch_counts)
            stats.batch_seconds.total = reported.batch_total_s

    def next_needed_seq(self) -> int:
        self._refresh()
        return self._reported.next_needed_seq if self._reported is not None else 1

    def lag(self) -> int:
        durable = self._durable_seq()
        published = self.stats.published_seq
        return max(0, durable - published) if durable is not None else 0


class RedisPublisher:
    """Follows the journal in `journal_dir` up to `durable_seq()` (None until the engine
    has opened its journal) and publishes to the stream in `config`."""

    def __init__(
        self,
        config: RedisConfig,
        journal_dir: Path,
        durable_seq: Callable[[], int | None],
    ) -> None:
        self.config = config
        self.stats = PublisherStats()
        self._dir = journal_dir
        self._durable_seq = durable_seq
        self._client: Redis | None = None  # connected on first use
        self._tail = JournalTail(journal_dir)
        self._fold = EventFold()
        self._pending: _Batch | None = None
        self._resumed = False
        self._creating = False  # the stream does not exist: the next entry makes it
        # Until the first resume nothing is known: keep the whole journal.
        self._hold_from = oldest_seq(journal_dir) or 1
        self._checkpoint_published = 0  # newest checkpoint at or before published_seq
        self._conflicting_last: int | None = None  # a stream found ahead of the journal

    @property
    def name(self) -> str:
        return self.config.name

    def next_needed_seq(self) -> int:
        """The oldest journal sequence still needed (for journal retention): what is not
        published yet, and the checkpoint the orders would be seeded from again if Redis
        lost what it holds."""
        if not self._resumed:
            return self._hold_from
        published = self.stats.published_seq
        return min(published + 1, self._checkpoint_published or published + 1)

    def lag(self) -> int:
        durable = self._durable_seq()
        return max(0, durable - self.stats.published_seq) if durable is not None else 0

    def status(self) -> PublisherStatus:
        """Its figures for the status file (when it runs in the projector's process)."""
        stats = self.stats
        return PublisherStatus(
            connected=stats.connected,
            published_seq=stats.published_seq,
            published_entries=stats.published_entries,
            republishes=stats.republishes,
            missing_entries=stats.missing_entries,
            failures=stats.failures,
            last_error=stats.last_error,
            next_needed_seq=self.next_needed_seq(),
            batch_counts=list(stats.batch_seconds.counts),
            batch_total_s=stats.batch_seconds.total,
        )

    # -- following ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until `stop` is set, retrying a failing Redis with backoff."""
        delay = self.config.retry_initial_s
        while not stop.is_set():
            try:
                busy = await self.step()
            except (RedisError, OSError, _StreamGone, StreamAhead) as exc:
                self._failed(exc)
                if not isinstance(exc, _StreamGone):
                    await sleep_unless_stopped(stop, delay)
                    delay = min(delay * 2, self.config.retry_max_s)
                continue
            delay = self.config.retry_initial_s
            if not busy:
                await sleep_unless_stopped(stop, self.config.poll_interval_s)

    async def catch_up(self, deadline_s: float) -> bool:
        """Publish everything durable now; False if Redis failed or time ran out."""
        give_up = time.monotonic() + deadline_s
        while time.monotonic() < give_up:
            try:
                if not await self.step():
                    return True
            except (RedisError, OSError, _StreamGone, StreamAhead) as exc:
                self._failed(exc)
                if not isinstance(exc, _StreamGone):
                    return False
        return False

    async def step(self) -> bool:
        """Publish one batch; True if there was something to publish."""
        if self._durable_seq() is None:
            return False  # the engine has not opened its journal yet
        if not self._resumed:
            await self._resume()
        if self._pending is None:
            self._pending = await asyncio.to_thread(self._next_batch)
            if self._pending is None:
                return False
        await self._publish(self._pending)
        self._pending = None
        return True

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def drain_and_close(self, deadline_s: float = DRAIN_TIMEOUT_S) -> None:
        """At a stop: publish what is durable (bounded, and only if Redis answers: an
        unreachable one would hold the stop up to its timeout), then close."""
        drained = self.stats.connected and await self.catch_up(deadline_s)
        if not drained:
            logger.warning(
                "redis: %d journal entries not published at shutdown; they are at the next start",
                self.lag(),
            )
        await self.close()

    def _failed(self, exc: BaseException) -> None:
        message = str(exc) or type(exc).__name__
        if isinstance(exc, _StreamGone):
            logger.warning("redis: stream %s is gone; writing it again", self.config.stream)
        elif self.stats.connected or self.stats.last_error != message:
            logger.warning("redis %s unavailable, retrying: %s", self.name, message)
        if not isinstance(exc, _StreamGone):
            self.stats.connected = False
            self.stats.failures += 1
            self.stats.last_error = message
        self._resumed = False  # read what the stream holds again before writing

    # -- Redis -------------------------------------------------------------------------

    def _redis(self) -> "Redis":
        if self._client is None:
            # Who publishes, as `redis-cli CLIENT LIST` shows it.
            self._client = connect(self.config, f"veloz-publisher-{os.getpid()}")
        return self._client

    async def _last_id(self) -> int | None:
        """The sequence of the stream's last id, or None if there is no stream."""
        try:
            info = await self._redis().xinfo_stream(self.config.stream)
        except ResponseError as exc:
            if "no such key" in str(exc).lower():
                return None
            raise
        last = info["last-generated-id"]
        return int((last.decode() if isinstance(last, bytes) else last).partition("-")[0])

    async def _resume(self) -> None:
        """Where to publish from: after the stream's last id; or, if there is no stream,
        the last `maxlen` entries the journal holds (what the stream would hold)."""
        last = await self._last_id()
        durable = self._durable_seq() or 0
        published_before = self.stats.published_seq
        if last is None:
            self._conflicting_last = None
            start = max(1, durable - self.config.maxlen + 1)
            if published_before:
                # Whatever was never published is needed too, however far behind.
                start = min(start, published_before + 1)
            self._creating = True
        else:
            if last > durable or last == self._conflicting_last:
                # Sticky: the journal catching up with the stream's ids does not make its
                # entries this journal's.
                self._conflicting_last = last
                raise StreamAhead(
                    f"stream {self.config.stream} holds entries up to {last}, found ahead of "
                    "this journal, so not from it: another engine, or another journal? "
                    "Delete the key to have it written again from this journal"
                )
            start = last + 1
            self._creating = False
        after = await asyncio.to_thread(self._position, start - 1)
        if published_before and (last is None or last < published_before):
            self.stats.republishes += 1
            logger.warning(
                "redis: stream %s lost entries (it holds %s, %d were published); publishing "
                "again from journal entry %d",
                self.config.stream,
                "none" if last is None else f"up to {last}",
                published_before,
                after + 1,
            )
        self.stats.published_seq = after
        self.stats.connected = True
        self._resumed = True
        logger.info(
            "redis %s: publishing to %s from journal entry %d",
            self.name,
            self.config.stream,
            after + 1,
        )

    async def _publish(self, batch: _Batch) -> None:
        started = time.perf_counter()
        pipe = self._redis().pipeline(transaction=False)
        for index, (seq, fields) in enumerate(batch.entries):
            pipe.xadd(
                self.config.stream,
                fields,  # type: ignore[arg-type]  # redis-py's field types are too narrow
                id=f"{seq}-0",
                maxlen=self.config.maxlen,
                approximate=True,
                # Only the first entry of a new stream creates it: an entry for a stream
                # flushed meanwhile is refused, not the start of a stream with a gap.
                nomkstream=not (self._creating and index == 0),
            )
        results = await pipe.execute(raise_on_error=False)
        done = 0
        for result in results:
            if result is None or isinstance(result, Exception):
                break
            done += 1
        if done:
            self._creating = False
            self.stats.published_seq = batch.entries[done - 1][0]
            self.stats.published_entries += done
        if done < len(results):
            batch.entries = batch.entries[done:]
            failed = results[done]
            if failed is None:
                raise _StreamGone()
            raise failed
        if batch.newest_checkpoint is not None:
            self._checkpoint_published = batch.newest_checkpoint
        self.stats.batch_seconds.observe(time.perf_counter() - started)
        self.stats.connected = True

    # -- the journal (in a worker thread) ----------------------------------------------

    def _next_batch(self) -> _Batch | None:
        up_to = self._durable_seq()
        if up_to is None or up_to <= self._fold.seq:
            return None
        read = self._tail.read(self._fold.seq, up_to, self.config.batch_entries)
        if read.missing is not None:
            # Retention keeps what is unpublished; this is a journal restored or cut.
            self._reseed_after_gap(*read.missing)
            return None
        if not read.records:
            return None
        checkpoints = [r.seq for r in read.records if r.entry_type == EntryType.Checkpoint]
        entries = [(record.seq, self._fold.apply(record)) for record in read.records]
        return _Batch(entries, checkpoints[-1] if checkpoints else None)

    def _position(self, seq: int) -> int:
        """Make the fold stand right after journal entry `seq`, keeping what of the
        pending batch comes after it. Returns where it stands: `seq`, or later if the
        journal no longer holds the state at `seq`."""
        pending = self._pending
        if pending is not None and pending.entries and pending.entries[0][0] - 1 <= seq:
            pending.entries = [e for e in pending.entries if e[0] > seq]
            if pending.entries:
                return seq
            self._pending = None
        self._pending = None
        must = seq < self._fold.seq or not self._fold.known
        if must or seq - self._fold.seq > self.config.batch_entries:
            self._seed_at_or_before(seq, must=must)
        self._fold_quietly(seq)
        return self._fold.seq

    def _seed_at_or_before(self, seq: int, *, must: bool) -> None:
        """Seed the fold from the newest checkpoint at or before `seq` (unless it is no
        nearer than where the fold stands and it need not move back); from nothing if the
        journal still starts at entry 1; else from its oldest checkpoint."""
        found = newest_checkpoint(self._dir, seq)
        if found is not None and (must or found[1] > self._fold.seq):
            self._fold.seed(*found)
            self._checkpoint_published = found[1]
            return
        if not must:
            return
        oldest = oldest_seq(self._dir)
        later = newest_checkpoint(self._dir, None, oldest_only=True)
        if oldest is None or oldest == 1 or later is None:
            self._fold.reset()
            return
        self._fold.seed(*later)
        self._checkpoint_published = later[1]
        self.stats.missing_entries += later[1] - seq
        logger.error(
            "redis: journal entries %d..%d cannot be published (the journal no longer holds "
            "the orders they change); publishing from entry %d",
            seq + 1,
            later[1],
            later[1] + 1,
        )

    def _fold_quietly(self, seq: int) -> None:
        """Apply the journal's entries up to `seq` to the fold without publishing them."""
        while self._fold.seq < seq:
            read = self._tail.read(self._fold.seq, seq, self.config.batch_entries)
            if read.missing is not None:
                self._reseed_after_gap(*read.missing)
                continue
            if not read.records:
                return
            for record in read.records:
                self._fold.apply(record)

    def _reseed_after_gap(self, first_missing: int, first_kept: int) -> None:
        later = newest_checkpoint(self._dir, None, oldest_only=True)
        logger.error(
            "redis: journal entries %d..%d are gone before they were published",
            first_missing,
            first_kept - 1,
        )
        if later is None:
            self._fold.reset(first_kept - 1)
        else:
            self._fold.seed(*later)
        self.stats.missing_entries += self._fold.seq + 1 - first_missing


def oldest_seq(directory: Path) -> int | None:
    """The first sequence the journal in `directory` holds, or None if it holds none."""
    if not directory.is_dir():
        return None
    records = JournalTail(directory).read(0, None, 1).records
    return records[0].seq if records else None


def newest_checkpoint(
    directory: Path, at_most: int | None, *, oldest_only: bool = False
) -> tuple[EngineCheckpoint, int] | None:
    """The newest checkpoint with a sequence at most `at_most` (or, with `oldest_only`,
    the oldest checkpoint there is) and its sequence; None if there is none."""
    if not directory.is_dir():
        return None
    segments, _ = list_segments(directory)
    paths = [s.path for s in segments]
    for path in paths if oldest_only else reversed(paths):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        found: Record | None = None
        for item in scan(data):
            if not isinstance(item, Record) or item.entry_type != EntryType.Checkpoint:
                continue
            if at_most is not None and item.seq > at_most:
                break
            found = item
            if oldest_only:
                break
        if found is None:
            continue
        try:
            return decode_msgpack(found.payload, EngineCheckpoint), found.seq
        except msgspec.DecodeError:
            continue
    return None
