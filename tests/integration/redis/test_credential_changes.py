"""Credential changes over a real redis-server: a change one process announces makes the
others read users and keys again (not itself); Redis down, an announcement is logged and
dropped, and a listener resubscribes and reads users and keys once it is back."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import cast

import pytest

from tests.support.redis import RedisServer, private_redis
from veloz.auth.service import AuthConfig, AuthService
from veloz.persistence.redis_events import RedisConfig
from veloz.runtime.credential_changes import CredentialChanges


class CountingAuth:
    """What CredentialChanges uses of an AuthService: its reload and its change hook."""

    def __init__(self) -> None:
        self.config = AuthConfig(enabled=True, reload_s=10.0)
        self.reloads = 0
        self.on_change: Callable[[], None] | None = None

    async def catch_up(self, min_age_s: float = 1.0) -> bool:
        self.reloads += 1
        return True


async def until(predicate: Callable[[], bool], within_s: float = 10.0) -> None:
    async with asyncio.timeout(within_s):
        while not predicate():  # noqa: ASYNC110 - Redis and the listener post no event
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def listening(server: RedisServer) -> AsyncIterator[tuple[CountingAuth, CredentialChanges]]:
    auth = CountingAuth()
    changes = CredentialChanges(RedisConfig(url=server.url, timeout_s=2), cast(AuthService, auth))
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(changes.run(stop))
    try:
        yield auth, changes
    finally:
        stop.set()
        await task
        await changes.close()


async def test_a_change_announced_by_one_makes_the_others_reload(tmp_path: Path):
    with private_redis(tmp_path) as server:
        async with listening(server) as (a, a_changes), listening(server) as (b, b_changes):
            await until(lambda: a_changes.subscribed.is_set() and b_changes.subscribed.is_set())
            await until(lambda: a.reloads == 1 and b.reloads == 1)  # once subscribed
            assert a.on_change is not None
            a.on_change()  # what AuthService calls after a change it made
            await until(lambda: b_changes.heard == 1)
            assert b.reloads == 2
            await asyncio.sleep(0.2)
            assert a_changes.heard == 0 and a.reloads == 1  # not its own note


async def test_redis_down_an_announcement_is_dropped_and_listening_resumes_with_a_reload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    with private_redis(tmp_path) as server:
        async with listening(server) as (auth, changes):
            await until(lambda: auth.reloads == 1)
            server.stop()
            await until(lambda: not changes.subscribed.is_set())
            assert auth.on_change is not None
            auth.on_change()
            await until(lambda: "not announced" in caplog.text)
            server.start()  # the same port: notes sent meanwhile are gone, so it reloads
            await until(lambda: changes.subscribed.is_set() and auth.reloads == 2, 20)
