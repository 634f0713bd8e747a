"""`veloz projector`: the history projector in a process of its own.

It follows the journal up to the durable mark the engine's journal writer publishes
(`veloz.journal.durable_mark`), never further, so it projects only what is on disk; it
imports the audit spool (`audit_spool`) into the store; and it writes its status file
(`projector_status`) for the engine's retention, health and metrics. One projector per
journal: it holds `<journal>/projector/lock` (flock) and a second one waits for it.

It does not migrate the store (the engine does, at its start, as it always has): until
the schema is there it retries like for a store that is down. On SIGTERM (the engine
stopping it, or the engine dying: the engine's child gets SIGTERM from the kernel then)
it projects what is durable, imports the spool, and exits.
"""

import asyncio
import fcntl
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from veloz.journal.durable_mark import read_durable_mark
from veloz.persistence.audit_import import AuditImporter
from veloz.persistence.audit_spool import AuditSpoolReader, spool_dir
from veloz.persistence.projector import Projector, ProjectorStats, sleep_unless_stopped
from veloz.persistence.projector_status import (
    STATUS_INTERVAL_S,
    ProjectorStatus,
    projector_dir,
    write_status,
)
from veloz.persistence.service import HistoryConfig, open_store
from veloz.persistence.store import Store, StoreUnavailable
from veloz.persistence.urls import redact

if TYPE_CHECKING:
    from veloz.persistence.redis_events import RedisConfig, RedisPublisher

logger = logging.getLogger(__name__)

LOCK_NAME = "lock"


def _durable_mark(journal_dir: Path) -> Callable[[], int | None]:
    """The durable mark as the publisher wants it: None until the engine has written one
    (so a stream ahead of nothing is waited for, not refused)."""

    def durable_seq() -> int | None:
        return read_durable_mark(journal_dir) or None

    return durable_seq


class ProjectorProcess:
    def __init__(
        self, config: HistoryConfig, journal_dir: Path, redis: "RedisConfig | None" = None
    ) -> None:
        self.config = config
        self.journal_dir = journal_dir
        # The Redis publisher follows the journal beside the projector, off the engine's
        # process (redis-py is imported only when it is configured).
        self.publisher: RedisPublisher | None = None
        if redis is not None:
            from veloz.persistence import redis_events  # noqa: PLC0415

            durable_seq = _durable_mark(journal_dir)
            self.publisher = redis_events.RedisPublisher(redis, journal_dir, durable_seq)
        projector_dir(journal_dir).mkdir(parents=True, exist_ok=True)
        self.store: Store = open_store(config.url)
        self.stats = ProjectorStats()
        self.projector = Projector(
            self.store,
            journal_dir,
            lambda: read_durable_mark(journal_dir),
            config.projector,
            self.stats,
        )
        self.audit = AuditImporter(
            AuditSpoolReader(spool_dir(journal_dir)),
            self.store,
            retry_initial_s=config.projector.retry_initial_s,
            retry_max_s=config.projector.retry_max_s,
            poll_interval_s=config.projector.poll_interval_s,
        )
        self.resumed = False

    def status(self) -> ProjectorStatus:
        stats = self.stats
        self.resumed = self.resumed or stats.connected  # `resume` read the store's mark
        return ProjectorStatus(
            pid=os.getpid(),
            ts_ns=time.time_ns(),
            resumed=self.resumed,
            high_water=stats.high_water,
            connected=stats.connected,
            last_error=stats.last_error,
            projected_entries=stats.projected_entries,
            batches=stats.batches,
            failures=stats.failures,
            missing_entries=stats.missing_entries,
            skipped_entries=stats.skipped_entries,
            audit_imported=self.audit.imported,
            redis=self.publisher.status() if self.publisher is not None else None,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Project until `stop` is set, then drain and exit."""
        fd = os.open(projector_dir(self.journal_dir) / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if await self._lock(fd, stop):
                await self._run(stop)
        finally:
            os.close(fd)  # releases the flock

    async def _lock(self, fd: int, stop: asyncio.Event) -> bool:
        """Wait for the projector's lock; once stopping, one more try only."""
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if stop.is_set():
                    return False
                if not waiting:
                    logger.warning("another projector holds %s: waiting", self.journal_dir)
                    waiting = True
            await sleep_unless_stopped(stop, 0.5)

    async def _run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        reporting = loop.create_task(self._report(stop), name="veloz-projector-status")
        publishing = (
            loop.create_task(self.publisher.run(stop), name="veloz-redis")
            if self.publisher is not None
            else None
        )
        await self._connect(stop)
        await asyncio.gather(self.projector.run(stop), self.audit.run(stop), return_exceptions=True)
        await reporting
        if publishing is not None:
            await asyncio.gather(publishing, return_exceptions=True)
            assert self.publisher is not None
            await self.publisher.drain_and_close()
        # Stopping: everything durable into the store, then the spool.
        if not await self.projector.catch_up(self.config.drain_timeout_s):
            logger.warning(
                "history store %d entries behind at exit; projected at the next start",
                self.projector.lag(),
            )
        await self.audit.drain()
        write_status(self.journal_dir, self.status())
        await self.store.close()

    async def _connect(self, stop: asyncio.Event) -> None:
        """Connect, retrying with backoff; once stopping (even from the start: the engine
        died early), one more try only, so what is durable still gets projected."""
        delay = self.config.projector.retry_initial_s
        while True:
            try:
                await self.store.connect()
                return
            except StoreUnavailable as exc:
                self.stats.last_error = str(exc)
                self.stats.failures += 1
                await self.store.close()
            if stop.is_set():
                return
            await sleep_unless_stopped(stop, delay)
            delay = min(delay * 2, self.config.projector.retry_max_s)

    async def _report(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.to_thread(write_status, self.journal_dir, self.status())
            await sleep_unless_stopped(stop, STATUS_INTERVAL_S)


async def run_projector(
    config: HistoryConfig,
    journal_dir: Path,
    stopping: Callable[[], bool] = lambda: False,
    redis: "RedisConfig | None" = None,
) -> int:
    """`veloz projector` until SIGTERM or SIGINT. `stopping()` says whether it was told to
    stop before its loop took the signals over: then it drains once and exits."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if stopping():
        stop.set()
    logger.info("projector following %s into %s", journal_dir, redact(config.url))
    if redis is not None:
        logger.info("publishing %s to %s %s", journal_dir, redis.name, redis.stream)
    await ProjectorProcess(config, journal_dir, redis).run(stop)
    return 0
