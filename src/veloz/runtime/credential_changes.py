"""Credential changes heard by every process that checks credentials.

An engine and its gateway replicas each keep users and keys in memory (`AuthService`),
read again from the store every `reload_s` (10 s). On a lone engine a revoked key or a
disabled user stops working at once; with replicas, the others would go on accepting it
until their next reload. So the process that changes a credential (through the API)
publishes a note on the Redis channel `<stream>:credentials`, and every process
subscribed to it reads users and keys again when it hears one: a change made through
any replica holds on all of them within a round trip.

Pub/sub keeps nothing: a process that was not subscribed (Redis down, a reconnect) reads
users and keys again once it is, and the periodic reload stays as the floor. A note that
cannot be published is logged; the others then catch up within `reload_s`.
"""

import asyncio
import logging
import os
import secrets
from typing import TYPE_CHECKING

from veloz.auth.service import AuthService
from veloz.persistence.projector import sleep_unless_stopped

if TYPE_CHECKING:  # redis-py is imported only by processes configured for Redis
    from redis.asyncio import Redis

    from veloz.persistence.redis_events import RedisConfig

logger = logging.getLogger(__name__)

CHANNEL_SUFFIX = ":credentials"
RETRY_MAX_S = 10.0
_LISTEN_S = 1.0  # how long one wait for a note lasts (a stop is noticed this fast)


class CredentialChanges:
    """Announces `auth`'s changes and reloads `auth` on everyone else's."""

    def __init__(self, config: "RedisConfig", auth: AuthService) -> None:
        from veloz.persistence.redis_events import connect  # noqa: PLC0415

        self._redis: Redis = connect(config, client_name=f"veloz-credentials-{os.getpid()}")
        self._channel = config.stream + CHANNEL_SUFFIX
        self._auth = auth
        # Who announced (its own notes it ignores): host, process and this instance.
        self._me = f"{os.uname().nodename}:{os.getpid()}:{secrets.token_hex(4)}".encode()
        self._announcing: set[asyncio.Task[None]] = set()
        self.heard = 0  # notes from others that made this process reload
        self.subscribed = asyncio.Event()
        auth.on_change = self.announce

    def announce(self) -> None:
        """Tell the other processes, without waiting: the change is in the store already."""
        task = asyncio.get_running_loop().create_task(self._publish())
        self._announcing.add(task)
        task.add_done_callback(self._announcing.discard)

    async def _publish(self) -> None:
        from redis.exceptions import RedisError  # noqa: PLC0415

        try:
            await self._redis.publish(self._channel, self._me)
        except (RedisError, OSError) as exc:
            logger.warning(
                "credential change not announced on Redis; other replicas see it within %g s: %s",
                self._auth.config.reload_s,
                exc,
            )

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until `stop` is set, resubscribing (and reloading) after each failure."""
        from redis.exceptions import RedisError  # noqa: PLC0415

        delay = 0.5
        while not stop.is_set():
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                self.subscribed.set()
                await self._auth.catch_up(min_age_s=0)  # what was said while not listening
                delay = 0.5
                while not stop.is_set():
                    note = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=_LISTEN_S
                    )
                    if note is not None and note.get("data") != self._me:
                        self.heard += 1
                        await self._auth.catch_up(min_age_s=0)
            except (RedisError, OSError) as exc:
                self.subscribed.clear()
                logger.warning("credential changes: Redis unavailable, retrying: %s", exc)
                await sleep_unless_stopped(stop, delay)
                delay = min(delay * 2, RETRY_MAX_S)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        if self._announcing:
            await asyncio.gather(*self._announcing, return_exceptions=True)
        await self._redis.aclose()
