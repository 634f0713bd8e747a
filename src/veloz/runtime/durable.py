"""Intent before send: the live runtime's event sink and order router in one.

Every event the core decides is appended to the journal (group commit). What depends on
it being on disk waits for the batch that holds it: publication on the event bus, and the
venue requests the core routed right after it. A batch that fails to become durable is
undone instead: its new orders are forgotten (never acknowledged, never sent) and its
cancel requests refused, so the order keeps working. One callback per batch, not one per
entry, since a batch holds hundreds of entries under load.
"""

import asyncio
import functools
import time

import msgspec

from veloz.codec import encode_event, encode_msgpack
from veloz.engine.bus import EventBus, Journaled
from veloz.engine.core import TradingCore
from veloz.execution.engine import ExecutionEngine
from veloz.execution.venue import VenueOrder
from veloz.journal.framing import EntryType
from veloz.journal.stats import JournalStats
from veloz.journal.writer import BatchDurability, JournalUnavailable, JournalWriter
from veloz.model.errors import CommandRejected, ErrorCode
from veloz.model.events import Event
from veloz.model.orders import Order

_Cancel = tuple[str, str]  # (client order id, symbol)


class _BatchFollowUp:
    """The events to publish and the requests to send once one journal batch is durable."""

    __slots__ = ("durable", "published", "requests")

    def __init__(self, durable: BatchDurability) -> None:
        self.durable = durable
        self.published: list[Journaled] = []
        self.requests: list[VenueOrder | _Cancel] = []


class DurableGate:
    def __init__(
        self,
        bus: EventBus,
        execution: ExecutionEngine,
        journal_stats: JournalStats,
        checkpoint_interval: int,
    ) -> None:
        self._bus = bus
        self._execution = execution
        self._journal_stats = journal_stats
        self._checkpoint_interval = checkpoint_interval
        self.journal: JournalWriter | None = None
        # Why no journal could be opened, when none was.
        self.journal_error: str | None = None
        self._core: TradingCore | None = None
        self._follow_up: _BatchFollowUp | None = None
        # The batch of the latest append: what a command that just emitted waits for.
        self.last_durable: BatchDurability | None = None
        # New orders whose submission is not durable yet, for idempotent resubmissions.
        self.pending_submissions: dict[str, BatchDurability] = {}
        # Orders handed to the venue and not answered yet, with when (venue latency).
        self.awaiting_venue: dict[str, float] = {}
        self.record_latency = True

    def bind(self, core: TradingCore) -> None:
        self._core = core

    # -- EventSink -----------------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        return self.journal is not None and self.journal.failure is None

    @property
    def failure(self) -> str | None:
        """Why the journal takes no entries, or None if it does."""
        if self.journal is None:
            return self.journal_error or "no journal"
        return self.journal.failure

    def emit(self, event: Event, order: Order | None) -> None:
        journal = self._writable()
        entry_type, payload = encode_event(event)
        try:
            seq, durable = journal.append(entry_type, payload, event.ts_ns)
        except JournalUnavailable as exc:
            raise refused(exc) from None
        self.last_durable = durable
        if self._bus.has_subscribers:
            # Copied now: the order keeps changing before the batch is durable.
            snapshot = msgspec.structs.replace(order) if order else None
            self._batch(durable).published.append(Journaled(seq, event, snapshot))
        self._maybe_checkpoint(journal)

    # -- OrderRouter ---------------------------------------------------------------------

    def send_order(self, order: VenueOrder) -> None:
        durable = self._last()
        self.pending_submissions[order.client_order_id] = durable
        self._batch(durable).requests.append(order)

    def send_cancel(self, client_order_id: str, symbol: str) -> None:
        self._batch(self._last()).requests.append((client_order_id, symbol))

    # -- checkpoints ---------------------------------------------------------------------

    def append_checkpoint(self) -> BatchDurability:
        journal = self._writable()
        assert self._core is not None
        state = self._core.checkpoint()
        _, durable = journal.append(EntryType.Checkpoint, encode_msgpack(state), state.ts_ns)
        self._journal_stats.checkpoints += 1
        return durable

    def _maybe_checkpoint(self, journal: JournalWriter) -> None:
        since = journal.entries_since_checkpoint
        if since < self._checkpoint_interval:
            return  # the common case, decided without looking at the book
        assert self._core is not None
        # A checkpoint carries every order in memory; stretching the interval with them keeps
        # checkpoints a bounded share of the log (and replay after one bounded) however many
        # orders rest.
        if since >= 4 * len(self._core.oms) and journal.failure is None:
            self.append_checkpoint()

    # -- batches -------------------------------------------------------------------------

    def _writable(self) -> JournalWriter:
        if self.journal is None:
            raise CommandRejected(self.failure or "no journal", code=ErrorCode.JOURNAL_UNAVAILABLE)
        return self.journal

    def _last(self) -> BatchDurability:
        if self.last_durable is None:
            raise RuntimeError("a venue request must follow the event that decided it")
        return self.last_durable

    def _batch(self, durable: BatchDurability) -> _BatchFollowUp:
        follow_up = self._follow_up
        if follow_up is None or follow_up.durable is not durable:
            # The batch in flight keeps its own follow-up: it travels with its callback.
            follow_up = self._follow_up = _BatchFollowUp(durable)
            durable.add_done_callback(functools.partial(self._on_batch_done, follow_up))
        return follow_up

    def _on_batch_done(self, follow_up: _BatchFollowUp, durable: asyncio.Future[None]) -> None:
        if self._follow_up is follow_up:
            self._follow_up = None
        if not _succeeded(durable):
            self._undo(follow_up.requests)
            return
        for message in follow_up.published:
            self._bus.publish(message)
        sent_at = time.perf_counter()
        for request in follow_up.requests:  # intent is durable: now the venue may see it
            if isinstance(request, VenueOrder):
                self.pending_submissions.pop(request.client_order_id, None)
                self._execution.send_order(request)
                if self.record_latency:
                    self.awaiting_venue[request.client_order_id] = sent_at
            else:
                self._execution.send_cancel(*request)

    def _undo(self, requests: list[VenueOrder | _Cancel]) -> None:
        core = self._core
        assert core is not None
        for request in requests:
            if isinstance(request, VenueOrder):
                self.pending_submissions.pop(request.client_order_id, None)
                order = core.oms.get(request.client_order_id)
                if order is not None:
                    core.undo_submission(order)
            elif core.oms.get(request[0]) is not None:
                core.refuse_cancel(request[0], "journal_unavailable")


def refused(error: JournalUnavailable) -> CommandRejected:
    return CommandRejected(error.message, code=ErrorCode.JOURNAL_UNAVAILABLE)


async def durable(batch: BatchDurability) -> None:
    """Wait for an entry's batch; a failed write refuses the command that waits on it."""
    try:
        await batch
    except JournalUnavailable as exc:
        raise refused(exc) from None


def _succeeded(future: asyncio.Future[None]) -> bool:
    return not future.cancelled() and future.exception() is None
