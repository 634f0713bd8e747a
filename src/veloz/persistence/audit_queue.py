"""Audit records on their way into a store that may be down: in memory, in order, written
in batches. At most `backlog` wait; beyond that the oldest are dropped (and counted: they
are in the `veloz.audit` log as well). The engine's history service keeps its audit trail
through one of these when the projector runs inline; otherwise (and on a gateway) records
go through an audit spool (`audit_spool`, `audit_import`)."""

import asyncio
import itertools
import logging
from collections import deque

from veloz.persistence.projector import sleep_unless_stopped
from veloz.persistence.store import AuditRecord, Store, StoreUnavailable

logger = logging.getLogger(__name__)

AUDIT_BATCH = 1_000  # records per transaction: one commit per request would not keep up


class AuditQueue:
    def __init__(
        self, store: Store, backlog: int, retry_initial_s: float, retry_max_s: float
    ) -> None:
        self._store = store
        self._backlog = backlog
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._records: deque[AuditRecord] = deque()
        self._waiting = asyncio.Event()
        self._lock = asyncio.Lock()
        self.dropped = 0

    def append(self, record: AuditRecord) -> None:
        """Queue `record` (never waits on the store)."""
        if len(self._records) >= self._backlog:
            self._records.popleft()
            self.dropped += 1
            logger.error("audit backlog full: the oldest record was dropped from the store")
        self._records.append(record)
        self._waiting.set()

    def wake(self) -> None:
        """End `run`'s wait (after `stop` was set)."""
        self._waiting.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Write what is queued as it comes, retrying a store that is down with backoff,
        until `stop` is set (and `wake` called)."""
        delay = self._retry_initial_s
        while not stop.is_set():
            await self._waiting.wait()
            self._waiting.clear()
            if not await self.flush():
                self._waiting.set()
                await sleep_unless_stopped(stop, delay)
                delay = min(delay * 2, self._retry_max_s)
            else:
                delay = self._retry_initial_s

    async def flush(self) -> bool:
        """Write every queued record now; False if the store refused one."""
        async with self._lock:  # one writer: a record is written once, in order
            while self._records:
                batch = list(itertools.islice(self._records, AUDIT_BATCH))
                try:
                    await self._store.record_audits(batch)
                except StoreUnavailable as exc:
                    logger.warning("audit records waiting for the store: %s", exc)
                    return False
                for _ in batch:
                    self._records.popleft()
        return True
