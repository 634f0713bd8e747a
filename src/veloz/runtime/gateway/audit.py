"""A gateway's audit trail: each record appended to a spool of its own
(VELOZ_GATEWAY_AUDIT_DIR, `audit_spool`) before the answer leaves, and imported from there
into the history store by the gateway itself (`AuditImporter`), as the projector does for
the engine's spool. A record of an answered request survives a kill -9 of the gateway and
reaches the store once it runs again on the same directory (at least once: a crash
between the store's commit and the saved place imports up to one batch twice).

One gateway per directory: it holds `<dir>/lock` (flock) while it runs, and a second one
refuses to start.
"""

import asyncio
import fcntl
import os
from pathlib import Path

from veloz.config import SettingsError
from veloz.persistence.audit_import import AuditImporter
from veloz.persistence.audit_spool import AuditSpoolReader, AuditSpoolWriter
from veloz.persistence.store import AuditRecord, HistoryStore

LOCK_NAME = "lock"
RETRY_INITIAL_S = 0.5
POLL_INTERVAL_S = 0.2


class GatewayAudit:
    def __init__(self, directory: Path, store: HistoryStore, retry_max_s: float) -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise SettingsError(
                f"VELOZ_GATEWAY_AUDIT_DIR: cannot use {directory}: {exc.strerror or exc}"
            ) from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise SettingsError(
                f"VELOZ_GATEWAY_AUDIT_DIR: {directory} is in use by another gateway "
                "(each gateway needs a directory of its own)"
            ) from None
        self._writer = AuditSpoolWriter(directory)
        self.importer = AuditImporter(
            AuditSpoolReader(directory),
            store,
            retry_initial_s=RETRY_INITIAL_S,
            retry_max_s=retry_max_s,
            poll_interval_s=POLL_INTERVAL_S,
        )

    def record(self, record: AuditRecord) -> None:
        """Into the spool (one `write`, never waits on the store)."""
        self._writer.append(record)

    async def run(self, stop: asyncio.Event) -> None:
        await self.importer.run(stop)

    async def close(self) -> None:
        """After the last answer: import what is left if the store answers (the rest at
        the next start), and let the directory go."""
        self._writer.close()
        await self.importer.drain()
        os.close(self._lock_fd)
