"""The history service: the store, the projector following the engine's journal, the
portfolio sampler and the audit writer, run beside the engine for as long as it runs.

It knows the engine only by what it is handed (`veloz.runtime.history` wires it): the
journal directory, how far the journal is durable, and a portfolio sample to store.

With `projector_mode` "inline" the projector and the audit writer run here, in the
engine's process. Otherwise (`process`: the engine's child `veloz projector`; `external`:
run by someone else, e.g. a Kubernetes sidecar) they run in `veloz projector`
(`projector_process`): here audit records go to the audit spool, and what the projector
has done is read from its status file (for retention, health and metrics). The store is
still opened here, for the history reads, the credentials and the portfolio samples.

Nothing here can stop the engine from trading: the store connects, migrates and writes in
background tasks that retry with backoff, and a store that is down shows as "degraded" in
`/health/ready`, not as unready.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec

from veloz.persistence.audit_queue import AuditQueue
from veloz.persistence.audit_spool import AuditSpoolWriter, spool_dir
from veloz.persistence.projector import (
    Projector,
    ProjectorConfig,
    ProjectorStats,
    sleep_unless_stopped,
)
from veloz.persistence.projector_status import STATUS_INTERVAL_S, ProjectorStatus, read_status
from veloz.persistence.sqlite import SqliteStore
from veloz.persistence.store import AuditRecord, PortfolioSnapshot, Store, StoreUnavailable
from veloz.persistence.urls import dialect_of, redact, sqlite_path

logger = logging.getLogger(__name__)


class HistoryConfig(msgspec.Struct, frozen=True, kw_only=True):
    url: str = "sqlite:///./data/veloz.db"
    migrate: bool = True
    snapshot_interval_s: float = 60.0
    drain_timeout_s: float = 5.0
    # Audit records waiting for a store that is down; beyond this the oldest are dropped
    # (and counted): they are in the log as well.
    audit_backlog: int = 10_000
    projector: ProjectorConfig = ProjectorConfig()
    # Where the projector runs: "inline" (in the engine), "process" (the engine's child
    # process) or "external" (run separately, e.g. a sidecar); VELOZ_PROJECTOR.
    projector_mode: str = "inline"

    @property
    def inline(self) -> bool:
        return self.projector_mode == "inline"


def open_store(url: str) -> Store:
    """The store `url` names (raises DatabaseUrlError for anything else)."""
    if dialect_of(url) == "sqlite":
        return SqliteStore(sqlite_path(url), time.time_ns)
    # asyncpg is imported only by deployments that use PostgreSQL.
    from veloz.persistence.postgres import PostgresStore  # noqa: PLC0415

    return PostgresStore(url, time.time_ns)


class HistoryService:
    """`journal_dir` is the journal the projector follows up to `durable_seq()`; `sample()`
    is the portfolio now, or None while the engine is not ready to be sampled."""

    def __init__(
        self,
        config: HistoryConfig,
        journal_dir: Path,
        durable_seq: Callable[[], int],
        sample: Callable[[], PortfolioSnapshot | None],
    ) -> None:
        self.config = config
        self.store = open_store(config.url)
        self._sample_now = sample
        self.stats = ProjectorStats()
        self.journal_dir = journal_dir
        self._durable_seq = durable_seq
        self.projector = (
            Projector(self.store, journal_dir, durable_seq, config.projector, self.stats)
            if config.inline
            else None
        )
        # Out of process: the projector's last status and the spool audit records go to.
        self.status: ProjectorStatus | None = None
        self._spool: AuditSpoolWriter | None = None
        self._started_ns = 0
        self._spool_failures = 0
        self.snapshots_failed = 0
        self._audit = AuditQueue(
            self.store,
            config.audit_backlog,
            config.projector.retry_initial_s,
            config.projector.retry_max_s,
        )
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = asyncio.Event()

    @property
    def name(self) -> str:
        return redact(self.config.url)

    def next_needed_seq(self) -> int:
        """The oldest journal sequence the projector still has to read: the journal's
        retention keeps the segment holding it. Out of process, before the projector ever
        said how far it is: 1, so retention keeps everything."""
        if self.projector is not None:
            return self.projector.next_needed_seq
        return self.status.high_water + 1 if self.status is not None else 1

    def lag(self) -> int:
        if self.projector is not None:
            return self.projector.lag()
        return max(0, self._durable_seq() - self.stats.high_water)

    def projector_up(self) -> bool:
        """Whether the projector is running: in process always; otherwise while its status
        file keeps changing."""
        return self.projector is not None or (self.status is not None and self.status.fresh())

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Try the store once now, so history reads work from the first request when the
        database is up; if it is not, keep trying in the background."""
        self._started_ns = time.time_ns()
        if self.projector is None:
            self._spool = AuditSpoolWriter(spool_dir(self.journal_dir))
        await self._try_connect()
        self._tasks = [asyncio.get_running_loop().create_task(self._run(), name="veloz-history")]

    async def stop(self) -> None:
        """After the engine stopped: project what the journal holds (bounded), then close."""
        self._stop.set()
        self._audit.wake()
        # The first task starts the others once connected: await it before them.
        await asyncio.gather(self._tasks[0], return_exceptions=True)
        await asyncio.gather(*self._tasks[1:], return_exceptions=True)
        if self._spool is not None:
            self._spool.close()
        if self._ready.is_set() and self.projector is not None:
            if not await self.projector.catch_up(self.config.drain_timeout_s):
                logger.warning(
                    "history store %d entries behind at shutdown; they are projected at the "
                    "next start",
                    self.lag(),
                )
            await self.flush_audit()
        await self.store.close()

    async def _run(self) -> None:
        await self._connect()
        if not self._ready.is_set():
            return  # stopped before the store ever answered
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._sample(), name="veloz-history-sampler"))
        if self.projector is None:
            await self._follow_status()
            return
        self._tasks.append(
            loop.create_task(self._audit.run(self._stop), name="veloz-history-audit")
        )
        await self.projector.run(self._stop)

    async def _follow_status(self) -> None:
        while not self._stop.is_set():
            self._read_status()
            await sleep_unless_stopped(self._stop, STATUS_INTERVAL_S)

    def _read_status(self) -> None:
        """Follow the projector's status. Only a status written since this start by a
        projector that read the store's mark counts: an older one may be ahead of a store
        restored meanwhile, and retention must not trust it."""
        status = read_status(self.journal_dir)
        if status is None or status.ts_ns < self._started_ns or not status.resumed:
            return
        self.status = status
        stats = self.stats
        stats.high_water = status.high_water
        stats.connected = status.connected and status.fresh()
        stats.last_error = status.last_error if status.fresh() else "projector not running"
        stats.projected_entries = status.projected_entries
        stats.batches = status.batches
        stats.failures = status.failures
        stats.missing_entries = status.missing_entries
        stats.skipped_entries = status.skipped_entries

    async def _connect(self) -> None:
        """Connect and migrate, retrying until it works or the service stops."""
        delay = self.config.projector.retry_initial_s
        while not self._ready.is_set() and not self._stop.is_set():
            await sleep_unless_stopped(self._stop, delay)
            delay = min(delay * 2, self.config.projector.retry_max_s)
            await self._try_connect()

    async def _try_connect(self) -> None:
        try:
            await self.store.connect()
            if self.config.migrate:
                for applied in await self.store.migrate():
                    logger.info(
                        "history store %s: applied migration %04d_%s",
                        self.name,
                        applied.version,
                        applied.name,
                    )
        except StoreUnavailable as exc:
            self.stats.failures += 1
            self.stats.last_error = str(exc)
            logger.warning("history store unavailable, retrying: %s", exc)
            await self.store.close()
            return
        if self.projector is None and self.status is None:
            # Until the projector reports: the store's own mark, for the lag shown.
            with contextlib.suppress(StoreUnavailable):
                self.stats.high_water = await self.store.high_water()
        self._ready.set()
        logger.info("history store %s connected", self.name)

    # -- samples and the audit trail -------------------------------------------------

    async def _sample(self) -> None:
        while not self._stop.is_set():
            await sleep_unless_stopped(self._stop, self.config.snapshot_interval_s)
            await self.record_snapshot()

    async def record_snapshot(self) -> None:
        """Positions, balances and equity now, if the engine can be sampled. A sample the
        store cannot take is dropped (and counted): the journal holds the facts it
        summarises."""
        snapshot = self._sample_now()
        if snapshot is None:
            return
        try:
            await self.store.record_snapshot(snapshot)
        except StoreUnavailable as exc:
            self.snapshots_failed += 1
            logger.warning("portfolio snapshot not stored: %s", exc)

    def record_audit(self, record: AuditRecord) -> None:
        """Queue an audit record for the store (never waits on it); out of process, append
        it to the spool the projector imports."""
        if self._spool is not None:
            try:
                self._spool.append(record)
            except OSError as exc:
                self._spool_failures += 1
                logger.error("audit record not spooled (it is in the log): %s", exc)
            return
        self._audit.append(record)

    @property
    def audit_dropped(self) -> int:
        """Audit records that did not reach the store: not spooled, or dropped from a
        full backlog."""
        return self._spool_failures + self._audit.dropped

    async def flush_audit(self) -> bool:
        """Write every queued audit record now; False if the store refused one."""
        return await self._audit.flush()


@contextlib.asynccontextmanager
async def running_history(history: HistoryService | None) -> AsyncIterator[None]:
    """Run the history service around the engine's life: started before the engine (so
    the journal's retention knows about it), stopped after it (so it projects the end)."""
    if history is None:
        yield
        return
    await history.start()
    try:
        yield
    finally:
        await history.stop()
