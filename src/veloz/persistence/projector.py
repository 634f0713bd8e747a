"""The projector: journal entries in, store rows out, write-behind.

It follows the journal files (never the order path), folds the entries into rows with the
same `Order` state machine the engine uses, and writes each batch with its high-water mark
in one transaction. A batch that fails is retried as it was, with backoff, until the store
takes it; the entries after it wait in the journal, whose retention keeps them for us. So a
crash anywhere resumes exactly after the last committed batch, and nothing is lost.

If the entries after the high-water mark are gone from the journal (a new store on an old
journal), the projector says so, skips to the next checkpoint and seeds the orders from it.
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from veloz.codec import PayloadError, decode_event, decode_msgpack
from veloz.engine.checkpoint import EngineCheckpoint
from veloz.journal.framing import EntryType, Record
from veloz.journal.tail import JournalTail
from veloz.model.errors import InvalidTransition
from veloz.model.events import (
    OrderCancelRejected,
    OrderDenied,
    OrderEvent,
    OrderFilled,
    OrderSubmitted,
    TradingModeChanged,
)
from veloz.model.orders import Order
from veloz.persistence.store import (
    FillRow,
    HistoryStore,
    ModeChangeRow,
    OrderRow,
    ProjectionBatch,
    StoreUnavailable,
)

logger = logging.getLogger(__name__)


class ProjectorConfig(msgspec.Struct, frozen=True, kw_only=True):
    batch_entries: int = 5_000
    poll_interval_s: float = 0.2
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0


@dataclass(slots=True)
class ProjectorStats:
    """What `/metrics` and `/health/ready` show about the store."""

    high_water: int = 0
    projected_entries: int = 0
    batches: int = 0
    failures: int = 0
    missing_entries: int = 0  # journal entries gone before they were projected
    skipped_entries: int = 0  # undecodable, or for an order the projection never saw
    connected: bool = False
    last_error: str = ""
    last_batch_seconds: float = 0.0


class OrderFold:
    """Orders as the store shows them, moved forward entry by entry. Only live orders are
    held: a final order never changes again."""

    def __init__(self, open_orders: list[Order], stats: ProjectorStats) -> None:
        self._open = {o.client_order_id: o for o in open_orders}
        self._stats = stats
        # After a gap, entries mean nothing until a checkpoint says where every order is.
        self.seeding = False

    def fold(self, records: list[Record]) -> ProjectionBatch:
        # Each order's latest state and entry: its row is built once, at the end.
        changed: dict[str, tuple[Order, int]] = {}
        batch = ProjectionBatch(last_seq=records[-1].seq)
        for record in records:
            if record.entry_type == EntryType.Checkpoint:
                if self.seeding:
                    self._seed(record, changed)
                continue
            if record.entry_type == EntryType.Rotation or self.seeding:
                continue
            try:
                event = decode_event(record.entry_type, record.payload)
            except PayloadError as exc:
                logger.error("history: skipping journal entry %d: %s", record.seq, exc)
                self._stats.skipped_entries += 1
                continue
            if isinstance(event, TradingModeChanged):
                batch.mode_changes.append(
                    ModeChangeRow(
                        journal_seq=record.seq,
                        ts_ns=event.ts_ns,
                        mode=event.mode,
                        reason=event.reason,
                        actor=event.actor,
                    )
                )
            elif isinstance(event, OrderFilled):
                batch.fills.append(FillRow(record.seq, event))
            if isinstance(event, OrderEvent) and not isinstance(event, OrderDenied):
                order = self._apply(event, record.seq)
                if order is not None:
                    changed[order.client_order_id] = (order, record.seq)
        batch.orders = [OrderRow.of(order, seq) for order, seq in changed.values()]
        return batch

    def _apply(self, event: OrderEvent, seq: int) -> Order | None:
        if isinstance(event, OrderSubmitted):
            submitted = self._open[event.client_order_id] = Order.from_submitted(event)
            return submitted
        order = self._open.get(event.client_order_id)
        if order is None:
            # A "too late to cancel" for a finished order changes nothing; anything else
            # is about an order this projection never saw.
            if not isinstance(event, OrderCancelRejected):
                self._stats.skipped_entries += 1
            return None
        try:
            order.apply(event)
        except InvalidTransition as exc:
            logger.error("history: journal entry %d does not apply: %s", seq, exc)
            self._stats.skipped_entries += 1
            return None
        if order.is_final:
            del self._open[order.client_order_id]
        return order

    def _seed(self, record: Record, changed: dict[str, tuple[Order, int]]) -> None:
        try:
            checkpoint = decode_msgpack(record.payload, EngineCheckpoint)
        except msgspec.DecodeError as exc:
            logger.error(
                "history: checkpoint %d unreadable (%s); waiting for another", record.seq, exc
            )
            return
        for order in checkpoint.orders:
            changed[order.client_order_id] = (order, record.seq)
            if not order.is_final:
                self._open[order.client_order_id] = order
        self.seeding = False
        logger.warning("history: orders seeded from the checkpoint at journal entry %d", record.seq)


class Projector:
    def __init__(
        self,
        store: HistoryStore,
        journal_dir: Path,
        # The last entry safe to read; None reads to the end (offline, nothing is writing).
        durable_seq: Callable[[], int | None],
        config: ProjectorConfig | None = None,
        stats: ProjectorStats | None = None,
    ) -> None:
        self._store = store
        self._tail = JournalTail(journal_dir)
        self._durable_seq = durable_seq
        self._config = config or ProjectorConfig()
        self.stats = stats or ProjectorStats()
        self._fold: OrderFold | None = None
        # Folded and not yet written, oldest first (at most two: one being written, one
        # folded meanwhile); and the last journal sequence folded into them.
        self._ready: deque[ProjectionBatch] = deque()
        self._folded_seq = 0
        self._stepping = asyncio.Lock()

    @property
    def next_needed_seq(self) -> int:
        """The oldest journal entry not yet in the store (for journal retention)."""
        return self.stats.high_water + 1

    def lag(self) -> int:
        durable = self._durable_seq()
        return max(0, durable - self.stats.high_water) if durable is not None else 0

    async def resume(self) -> None:
        """Read where the store stopped and which orders it holds open."""
        self.stats.high_water = await self._store.high_water()
        self._fold = OrderFold(await self._store.open_orders(), self.stats)
        self._folded_seq = self.stats.high_water
        self.stats.connected = True

    async def step(self) -> bool:
        """Write one batch; True if there was something to project. The next batch is read
        and folded while this one is written, so the two overlap. Callers take turns (the
        follower and a catch-up may both step): a batch is written once, in order."""
        async with self._stepping:
            return await self._step()

    async def _step(self) -> bool:
        if self._fold is None:
            await self.resume()
        fold = self._fold
        assert fold is not None
        # Reading, decoding and folding thousands of entries is CPU work: off the loop (in
        # `_fold_next`), so the order path keeps its event loop.
        if not self._ready and not await self._fold_next(fold):
            return False
        following = None
        if len(self._ready) < 2:
            following = asyncio.ensure_future(self._fold_next(fold))
        try:
            await self._write(self._ready[0])
        finally:
            if following is not None:
                await following  # folded either way; kept for the next step if this failed
        self._ready.popleft()
        return True

    async def _fold_next(self, fold: OrderFold) -> bool:
        batch = await asyncio.to_thread(self._next_batch, fold)
        if batch is None:
            return False
        self._ready.append(batch)
        self._folded_seq = batch.last_seq
        return True

    async def _write(self, batch: ProjectionBatch) -> None:
        started = time.perf_counter()
        await self._store.apply(batch)
        self.stats.last_batch_seconds = time.perf_counter() - started
        self.stats.batches += 1
        self.stats.projected_entries += batch.last_seq - self.stats.high_water
        self.stats.high_water = batch.last_seq
        self.stats.connected = True

    def _next_batch(self, fold: OrderFold) -> ProjectionBatch | None:
        up_to = self._durable_seq()
        if up_to is not None and up_to <= self._folded_seq:
            return None
        read = self._tail.read(self._folded_seq, up_to, self._config.batch_entries)
        if read.missing is not None:
            first_missing, first_kept = read.missing
            self.stats.missing_entries += first_kept - first_missing
            fold.seeding = True
            logger.error(
                "history: journal entries %d..%d are gone before the store had them; "
                "seeding orders from the next checkpoint (fills in that range are not in "
                "the store)",
                first_missing,
                first_kept - 1,
            )
        if not read.records:
            return None
        return fold.fold(read.records)

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the journal until `stop` is set, retrying a failing store with backoff."""
        delay = self._config.retry_initial_s
        while not stop.is_set():
            try:
                busy = await self.step()
            except StoreUnavailable as exc:
                self._failed(exc)
                await sleep_unless_stopped(stop, delay)
                delay = min(delay * 2, self._config.retry_max_s)
                continue
            delay = self._config.retry_initial_s
            if not busy:
                await sleep_unless_stopped(stop, self._config.poll_interval_s)

    async def catch_up(self, deadline_s: float | None = None) -> bool:
        """Project everything durable now; False if the store failed or time ran out."""
        give_up = None if deadline_s is None else time.monotonic() + deadline_s
        while give_up is None or time.monotonic() < give_up:
            try:
                if not await self.step():
                    return True
            except StoreUnavailable as exc:
                self._failed(exc)
                return False
        return False

    def _failed(self, exc: StoreUnavailable) -> None:
        if self.stats.connected or self.stats.last_error != str(exc):
            logger.warning("history store unavailable, retrying: %s", exc)
        self.stats.connected = False
        self.stats.failures += 1
        self.stats.last_error = str(exc)
        # Read state again on reconnect (the store may have been restored meanwhile), unless
        # batches folded from the old state still wait to be written.
        if not self._ready:
            self._fold = None


async def sleep_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def rebuild(store: HistoryStore, journal_dir: Path) -> ProjectorStats:
    """Empty the projection and project the whole journal again (the engine must be
    stopped: the caller holds the journal's lock). Samples and the audit trail stay."""
    await store.reset_projection()
    projector = Projector(store, journal_dir, lambda: None)
    if not await projector.catch_up():
        raise StoreUnavailable(projector.stats.last_error)
    return projector.stats
