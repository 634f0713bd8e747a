"""The audit importer: an audit spool (`audit_spool`) into the history store, for the
projector process (the engine's spool) and for a gateway (its own).

It reads up to `AUDIT_BATCH` records after the spool's saved place, writes them in one
`record_audits`, and only then moves the place on; a store that is down is retried with
backoff, the records waiting in the spool meanwhile. A crash between the store's commit
and the saved place imports up to one batch twice: at least once, never lost. Whoever
runs `run` calls `drain` once its writer is done, to import what is left if the store
answers.
"""

import asyncio
import logging

from veloz.persistence.audit_queue import AUDIT_BATCH
from veloz.persistence.audit_spool import AuditSpoolReader
from veloz.persistence.projector import sleep_unless_stopped
from veloz.persistence.store import HistoryStore, StoreUnavailable

logger = logging.getLogger(__name__)


class AuditImporter:
    def __init__(
        self,
        spool: AuditSpoolReader,
        store: HistoryStore,
        *,
        retry_initial_s: float,
        retry_max_s: float,
        poll_interval_s: float,
    ) -> None:
        self.spool = spool
        self._store = store
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._poll_interval_s = poll_interval_s
        self.imported = 0  # records written to the store since the start
        self.failing = False  # the store refused the last batch

    async def run(self, stop: asyncio.Event) -> None:
        """Import as records come (polling the spool), until `stop` is set."""
        delay = self._retry_initial_s
        while not stop.is_set():
            imported = await self.import_now()
            if self.failing:
                await sleep_unless_stopped(stop, delay)
                delay = min(delay * 2, self._retry_max_s)
                continue
            delay = self._retry_initial_s
            if not imported:
                await sleep_unless_stopped(stop, self._poll_interval_s)

    async def drain(self) -> None:
        """Stopping, the writer done: import what is left, once; what the store does not
        take stays in the spool for the next start."""
        await self.import_now()
        left = await asyncio.to_thread(self.spool.pending_bytes)
        if left:
            logger.warning("%d bytes of audit records left in the spool for the next start", left)

    async def import_now(self) -> int:
        """Import the spool into the store as far as it goes now; how many records."""
        total = 0
        while True:
            batch = await asyncio.to_thread(self.spool.read, AUDIT_BATCH)
            if batch.records:
                try:
                    await self._store.record_audits(batch.records)
                except StoreUnavailable as exc:
                    self.failing = True
                    logger.warning("audit records waiting in the spool for the store: %s", exc)
                    return total
            self.failing = False
            if (batch.number, batch.offset) == (self.spool.number, self.spool.offset):
                return total
            await asyncio.to_thread(self.spool.commit, batch)
            total += len(batch.records)
            self.imported += len(batch.records)
