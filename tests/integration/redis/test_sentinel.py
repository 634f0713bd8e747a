"""Publishing through Sentinel: the publisher asks the Sentinel for the master and
writes the stream there."""

from pathlib import Path

import pytest
from redis.exceptions import AuthenticationError

from tests.integration.redis.test_publisher import caught_up, entries, place, until
from tests.support.engine import engine_config, quote
from tests.support.redis import Sentinel, private_redis
from veloz.journal.tail import JournalTail
from veloz.persistence.redis_events import RedisConfig
from veloz.runtime.live import LiveEngine
from veloz.runtime.redis_events import attach_redis, running_redis


async def test_the_stream_is_written_to_the_master_sentinel_names(wal_dir: Path, tmp_path: Path):
    with private_redis(tmp_path / "redis") as master:
        sentinel = Sentinel(tmp_path, master, name="veloz")
        try:
            engine = LiveEngine(engine_config(wal_dir))
            config = RedisConfig(sentinels=(("127.0.0.1", sentinel.port),), master="veloz")
            publisher = attach_redis(config, engine)
            async with running_redis(publisher):
                await engine.start()
                engine.market.on_data(quote())
                await place(engine, 6, "s")
                await until(caught_up(engine, publisher))
                await engine.stop()
        finally:
            sentinel.stop()
        published = [seq for seq, _ in entries(master)]
        assert published == [r.seq for r in JournalTail(wal_dir).read(0).records]
        assert publisher.name == f"sentinel veloz via 127.0.0.1:{sentinel.port}"


async def test_a_password_protected_master_is_reached_through_sentinel(
    wal_dir: Path, tmp_path: Path
):
    password = "s3ntinel-master-secret"
    with private_redis(tmp_path / "redis", password=password) as master:
        sentinel = Sentinel(tmp_path, master, name="veloz")
        try:
            engine = LiveEngine(engine_config(wal_dir))
            sentinels = (("127.0.0.1", sentinel.port),)
            config = RedisConfig(sentinels=sentinels, master="veloz", password=password)
            assert password not in repr(config)
            publisher = attach_redis(config, engine)
            async with running_redis(publisher):
                await engine.start()
                engine.market.on_data(quote())
                await place(engine, 3, "p")
                await until(caught_up(engine, publisher))
                await engine.stop()
            # Without the password the master refuses the publisher: it says so.
            refused = RedisConfig(sentinels=sentinels, master="veloz", retry_initial_s=0.05)
            wrong = attach_redis(refused, LiveEngine(engine_config(tmp_path / "other")))
            with pytest.raises(AuthenticationError):
                await wrong._redis().ping()
            await wrong.close()
        finally:
            sentinel.stop()
        published = [seq for seq, _ in entries(master)]
        assert published == [r.seq for r in JournalTail(wal_dir).read(0).records]
