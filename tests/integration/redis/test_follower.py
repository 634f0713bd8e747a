"""The gateway's stream follower against a real Redis: a burst of entries (a gateway
catching up) is applied in chunks, the event loop running in between, so the stream
clients the hub woke write theirs before the next chunk reaches their mailboxes, and a
client that keeps up is not detached as a slow one."""

import asyncio
import contextlib

import httpx
import redis

from tests.support.redis import private_redis
from tests.unit.model.order_builders import submitted
from veloz.api.stream_hub import GATEWAY_FLUSH_INTERVAL_S, StreamHub
from veloz.codec import encode_event
from veloz.engine.bus import Journaled
from veloz.journal.framing import Record
from veloz.persistence.redis_events import EventFold, RedisConfig
from veloz.runtime.gateway.client import GatewayClient, GatewayConfig
from veloz.runtime.gateway.follower import StreamFollower
from veloz.runtime.gateway.link import EngineLink


def write_entries(url: str, stream: str, count: int) -> None:
    """`count` order submissions as the engine's publisher writes them (`EventFold`)."""
    fold = EventFold()
    fold.reset()
    client = redis.Redis.from_url(url)
    pipeline = client.pipeline()
    for seq in range(1, count + 1):
        event = submitted(f"burst-{seq}")
        entry_type, payload = encode_event(event)
        fields = fold.apply(Record(0, int(entry_type), seq, event.ts_ns, payload))
        pipeline.xadd(stream, fields, id=f"{seq}-0")  # type: ignore[arg-type]  # too narrow
    pipeline.execute()
    client.close()


async def test_a_burst_is_applied_in_chunks_with_the_loop_turning_between_them(tmp_path):
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    with private_redis(tmp_path / "redis") as server:
        config = RedisConfig(url=server.url)
        applied_at_turn: list[int] = []
        burst = 1_000  # one read's worth (the follower's batch)
        all_applied = asyncio.Event()

        def on_message(message: Journaled) -> None:
            applied_at_turn.append(turns)
            if len(applied_at_turn) == burst:
                all_applied.set()

        follower = StreamFollower(config, on_message, lambda seq: None, block_ms=100)
        stop = asyncio.Event()
        following = asyncio.create_task(follower.run(stop))
        turning = asyncio.create_task(count_turns())
        await asyncio.wait_for(follower.ready.wait(), 10)
        write_entries(server.url, config.stream, burst)
        await asyncio.wait_for(all_applied.wait(), 20)
        stop.set()
        turning.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await turning
        await following
        await follower.close()
    assert follower.stats.seq == burst and follower.stats.gaps == 0
    # Applied in one go, the whole read would share one turn of the loop.
    assert len(set(applied_at_turn)) >= 5


async def test_a_client_keeping_up_is_not_dropped_by_a_gateways_catch_up(tmp_path):
    """Its mailbox holds a fifth of the burst the follower reads at once: applied whole,
    the burst would fill it before the hub's next flush and detach the client."""
    link = EngineLink(
        "http://engine.test", transport=httpx.MockTransport(lambda r: httpx.Response(404))
    )
    with private_redis(tmp_path / "redis") as server:
        config = RedisConfig(url=server.url)
        gateway = GatewayClient(GatewayConfig(), link, config)
        stop = asyncio.Event()
        hub = StreamHub(gateway, stop, mailbox_size=200, flush_interval_s=GATEWAY_FLUSH_INTERVAL_S)
        mailbox = hub.open_orders()
        burst = 1_000
        received = 0
        done = asyncio.Event()  # all received, or the client dropped

        async def keep_up() -> None:
            nonlocal received
            while frames := await mailbox.take():
                received += len(frames)
                if received >= burst:
                    break
            done.set()

        following = asyncio.create_task(gateway.follower.run(stop))
        client = asyncio.create_task(keep_up())
        await asyncio.wait_for(gateway.follower.ready.wait(), 10)
        write_entries(server.url, config.stream, burst)
        await asyncio.wait_for(done.wait(), 20)
        stop.set()
        hub.close(mailbox)
        await asyncio.gather(following, client)
        await gateway.follower.close()
    await link.close()
    assert hub.slow_dropped == 0
    assert received == burst
