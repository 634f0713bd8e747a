"""Wiring the Redis Streams publisher to a live engine: the journal it follows, its place
among the journal's readers, and its life around the engine's."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from veloz.runtime.live import LiveEngine

if TYPE_CHECKING:  # redis-py is imported only by engines that publish to Redis
    from veloz.persistence.redis_events import RedisConfig, RedisPublisher, RemotePublisher


def _durable_seq(engine: LiveEngine) -> "Callable[[], int | None]":
    def durable_seq() -> int | None:
        journal = engine.journal
        return journal.durable_seq if journal is not None else None

    return durable_seq


def attach_redis(config: "RedisConfig", engine: LiveEngine) -> "RedisPublisher":
    """A publisher following `engine`'s journal in this process. Call it before the engine
    starts: registered as a journal reader then, retention never deletes what is
    unpublished."""
    from veloz.persistence.redis_events import RedisPublisher  # noqa: PLC0415

    directory = Path(engine.config.journal.directory)
    publisher = RedisPublisher(config, directory, _durable_seq(engine))
    engine.journal_readers.append(publisher.next_needed_seq)
    engine.redis = publisher  # for /health/ready and /metrics
    return publisher


def attach_remote_redis(config: "RedisConfig", engine: LiveEngine) -> "RemotePublisher":
    """The engine's view of the publisher `veloz projector` runs: its figures for
    /health/ready and /metrics, and its place among the journal's readers (from the
    projector's status file). Call it before the engine starts, as `attach_redis`."""
    from veloz.persistence.redis_events import RemotePublisher  # noqa: PLC0415

    directory = Path(engine.config.journal.directory)
    publisher = RemotePublisher(config, directory, _durable_seq(engine), time.time_ns())
    engine.journal_readers.append(publisher.next_needed_seq)
    engine.redis = publisher
    return publisher


@contextlib.asynccontextmanager
async def running_redis(
    publisher: "RedisPublisher | RemotePublisher | None",
) -> AsyncIterator[None]:
    """Publish for as long as the engine runs: started before it, and after it stopped the
    journal's last entries are published (bounded) before the connection closes. One in
    the projector's process runs with that process."""
    from veloz.persistence.redis_events import RedisPublisher  # noqa: PLC0415

    if not isinstance(publisher, RedisPublisher):
        yield
        return
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(publisher.run(stop), name="veloz-redis")
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        await publisher.drain_and_close()
