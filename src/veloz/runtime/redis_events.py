"""Wiring the Redis Streams publisher to a live engine: the journal it follows, its place
among the journal's readers, and its life around the engine's."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from veloz.runtime.live import LiveEngine

if TYPE_CHECKING:  # redis-py is imported only by engines that publish to Redis
    from veloz.persistence.redis_events import RedisConfig, RedisPublisher

logger = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 5.0


def attach_redis(config: "RedisConfig", engine: LiveEngine) -> "RedisPublisher":
    """A publisher following `engine`'s journal. Call it before the engine starts:
    registered as a journal reader then, retention never deletes what is unpublished."""
    from veloz.persistence.redis_events import RedisPublisher  # noqa: PLC0415

    def durable_seq() -> int | None:
        journal = engine.journal
        return journal.durable_seq if journal is not None else None

    publisher = RedisPublisher(config, Path(engine.config.journal.directory), durable_seq)
    engine.journal_readers.append(publisher.next_needed_seq)
    engine.redis = publisher  # for /health/ready and /metrics
    return publisher


@contextlib.asynccontextmanager
async def running_redis(publisher: "RedisPublisher | None") -> AsyncIterator[None]:
    """Publish for as long as the engine runs: started before it, and after it stopped the
    journal's last entries are published (bounded) before the connection closes."""
    if publisher is None:
        yield
        return
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(publisher.run(stop), name="veloz-redis")
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        # Only if Redis answers: an unreachable one would hold the shutdown up to its timeout.
        drained = publisher.stats.connected and await publisher.catch_up(DRAIN_TIMEOUT_S)
        if not drained:
            logger.warning(
                "redis: %d journal entries not published at shutdown; they are at the next start",
                publisher.lag(),
            )
        await publisher.close()
