"""The Redis Streams publisher against a real redis-server: every journal entry once, its
id its sequence, its fields what SSE would send; Redis down at start, killed, restarted
with and without its data, and flushed; and the journal keeping what is unpublished."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from tests.support.engine import NO_LIMITS, engine_config, journaled, quote
from tests.support.redis import RedisServer, private_redis
from veloz.codec import encode_json
from veloz.engine.bus import Journaled
from veloz.engine.views.orders import OrderView
from veloz.engine.views.streams import stream_events
from veloz.execution.venues.sim import SimVenueConfig
from veloz.journal.segments import list_segments
from veloz.journal.tail import JournalTail
from veloz.model.commands import CancelOrder, SubmitOrder
from veloz.model.enums import OrderSide, OrderStatus
from veloz.persistence.redis_events import RedisConfig, RedisPublisher
from veloz.runtime.gateway.follower import decode_entry
from veloz.runtime.health import cache_health
from veloz.runtime.live import LiveEngine
from veloz.runtime.redis_events import attach_redis, running_redis

STREAM = "veloz:events"
RICH = {"USDT": Decimal("100000000"), "BTC": Decimal("1000"), "ETH": Decimal("1000")}


@contextlib.asynccontextmanager
async def publishing(
    wal_dir: Path, url: str, *, maxlen: int = 1_000_000, **journal: object
) -> AsyncIterator[tuple[LiveEngine, RedisPublisher, list[Journaled]]]:
    config = msgspec.structs.replace(
        engine_config(wal_dir, NO_LIMITS, **journal),
        venue=SimVenueConfig(latency_ms=0, starting_balances=RICH),
    )
    engine = LiveEngine(config)
    publisher = attach_redis(
        RedisConfig(url=url, maxlen=maxlen, retry_initial_s=0.02, retry_max_s=0.1, timeout_s=2),
        engine,
    )
    seen = journaled(engine)
    async with running_redis(publisher):
        await engine.start()
        engine.market.on_data(quote())
        try:
            yield engine, publisher, seen
        finally:
            await engine.stop()


async def until(predicate: Callable[[], bool], within_s: float = 20.0) -> None:
    """Poll `predicate` (Redis and the publisher's task publish no event to await)."""
    give_up = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < give_up, "timed out"
        await asyncio.sleep(0.01)


def caught_up(engine: LiveEngine, publisher: RedisPublisher) -> Callable[[], bool]:
    def done() -> bool:
        journal = engine.journal
        return (
            journal is not None
            and publisher.stats.connected
            and publisher.stats.published_seq == journal.durable_seq
        )

    return done


async def place(engine: LiveEngine, count: int, prefix: str) -> None:
    """Orders of three fates: filled at once, resting, and resting then cancelled."""
    for i in range(count):
        coid = f"{prefix}{i}"
        await engine.submit(
            SubmitOrder(
                symbol="BTCUSDT",
                side=OrderSide.BUY,
                qty=Decimal("0.010"),
                price=Decimal("50010") if i % 3 == 0 else Decimal("49000"),
                client_order_id=coid,
            )
        )
    for i in range(2, count, 3):
        coid = f"{prefix}{i}"

        def accepted(coid: str = coid) -> bool:
            order = engine.oms.get(coid)
            return order is not None and order.status is OrderStatus.ACCEPTED

        await until(accepted)
        await engine.cancel(CancelOrder(client_order_id=coid))
    await until(
        lambda: all(not o.status.name.startswith("PENDING") for o in engine.oms.all_orders())
    )


def entries(server: RedisServer) -> list[tuple[int, dict[str, bytes]]]:
    return server.entries(STREAM)


def journal_seqs(wal_dir: Path) -> list[int]:
    return [r.seq for r in JournalTail(wal_dir).read(0, None, 10_000_000).records]


def assert_matches_the_journal(server: RedisServer, wal_dir: Path, seen: list[Journaled]) -> None:
    """Each journal entry once, in order, id = sequence; each event's fields what SSE
    sends for it (the engine's own bus messages rendered as the hub renders them)."""
    published = entries(server)
    ids = [seq for seq, _ in published]
    assert ids == journal_seqs(wal_dir)
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # no gap
    by_seq = dict(published)
    for seq, fields in published:
        assert fields["seq"] == str(seq).encode()
    for message in seen:
        fields = by_seq[message.seq]
        assert fields["event"].decode() == type(message.event).__name__
        expected = {e["type"]: encode_json(e) for e in stream_events(message)}
        raw = ("seq", "event", "entry_type", "payload", "order")
        assert {k: v for k, v in fields.items() if k not in raw} == expected
        # A gateway rebuilds the engine's own bus message from the entry.
        rebuilt = decode_entry(message.seq, {k.encode(): v for k, v in fields.items()})
        assert rebuilt is not None and rebuilt.event == message.event
        # (The bus's order is the live object, changed since: compare what a view shows.)
        if message.order is not None:
            assert rebuilt.order is not None
            assert OrderView.of(rebuilt.order) == OrderView.of(message.order)


def test_without_redis_the_cache_is_not_configured():
    health = cache_health(None)
    assert (health.ok, health.status) == (True, "not_configured")


async def test_every_entry_is_published_with_its_sequence_as_id(wal_dir, tmp_path):
    with private_redis(tmp_path / "redis") as server:
        async with publishing(wal_dir, server.url) as (engine, publisher, seen):
            await place(engine, 30, "o")
            await until(caught_up(engine, publisher))
            assert cache_health(publisher).status == "ok"
        assert_matches_the_journal(server, wal_dir, seen)
        events = [f["event"] for _, f in entries(server)]
        assert {b"OrderSubmitted", b"OrderAccepted", b"OrderFilled", b"OrderCancelled"} <= set(
            events
        )
        assert b"Checkpoint" in events
        # A fill becomes two stream events, as on SSE: the fill, then the order.
        filled = next(f for _, f in entries(server) if f["event"] == b"OrderFilled")
        assert list(filled) == [
            "seq",
            "event",
            "fill",
            "order_update",
            "entry_type",
            "payload",
            "order",
        ]
        assert msgspec.json.decode(filled["order_update"])["status"] == "FILLED"


async def test_a_burst_is_published_in_pipelined_batches(wal_dir, tmp_path):
    with private_redis(tmp_path / "redis") as server:
        async with publishing(wal_dir, server.url, sync=False) as (engine, publisher, seen):
            orders = [
                SubmitOrder(
                    symbol="BTCUSDT",
                    side=OrderSide.BUY,
                    qty=Decimal("0.010"),
                    price=Decimal("40000"),
                    client_order_id=f"b{i}",
                )
                for i in range(3_000)
            ]
            for start in range(0, len(orders), 500):
                await asyncio.gather(*(engine.submit(o) for o in orders[start : start + 500]))
            await until(lambda: engine.oms.counts()[OrderStatus.ACCEPTED] == 3_000)
            await until(caught_up(engine, publisher))
            batches = publisher.stats.batch_seconds.count
            assert publisher.stats.published_entries >= 6_000
            assert batches < publisher.stats.published_entries / 10  # pipelined, not one by one
        assert_matches_the_journal(server, wal_dir, seen)


async def test_redis_down_at_start_then_up_publishes_everything(wal_dir, tmp_path):
    with private_redis(tmp_path / "redis", started=False) as server:
        async with publishing(wal_dir, server.url) as (engine, publisher, seen):
            await place(engine, 12, "d")  # trading goes on without Redis
            health = cache_health(publisher)
            assert (health.ok, health.status) == (True, "degraded")
            assert "unavailable" in health.detail
            assert publisher.lag() > 0
            server.start()
            await until(caught_up(engine, publisher))
            await place(engine, 6, "e")
            await until(caught_up(engine, publisher))
        assert_matches_the_journal(server, wal_dir, seen)
        assert entries(server)[0][0] == 1
        assert publisher.stats.republishes == 0


@pytest.mark.parametrize("keeps_data", [False, True], ids=["no-persistence", "appendonly"])
async def test_redis_killed_mid_stream_and_restarted(wal_dir, tmp_path, keeps_data):
    with private_redis(tmp_path / "redis", appendonly=keeps_data) as server:
        async with publishing(wal_dir, server.url) as (engine, publisher, seen):
            await place(engine, 9, "k")
            await until(caught_up(engine, publisher))
            server.stop()
            await place(engine, 9, "l")
            await until(lambda: not publisher.stats.connected)
            server.start()
            await until(caught_up(engine, publisher))
        assert_matches_the_journal(server, wal_dir, seen)
        assert entries(server)[0][0] == 1
        # Without its data the stream was written again from the journal; with it, the
        # publisher went on after the last id Redis held.
        assert publisher.stats.republishes == (0 if keeps_data else 1)


async def test_flushdb_mid_stream_is_survived(wal_dir, tmp_path):
    with private_redis(tmp_path / "redis") as server:
        async with publishing(wal_dir, server.url) as (engine, publisher, seen):
            await place(engine, 9, "f")
            await until(caught_up(engine, publisher))
            server.client().flushdb()
            await place(engine, 9, "g")
            await until(caught_up(engine, publisher))
        assert_matches_the_journal(server, wal_dir, seen)
        assert entries(server)[0][0] == 1
        assert publisher.stats.republishes == 1


async def test_a_flushed_stream_is_written_again_for_its_last_maxlen_entries(wal_dir, tmp_path):
    with private_redis(tmp_path / "redis") as server:
        async with publishing(wal_dir, server.url, maxlen=1_000) as (engine, publisher, seen):
            await place(engine, 600, "m")
            await until(caught_up(engine, publisher))
            assert engine.journal is not None
            flushed_at = engine.journal.durable_seq
            server.client().flushdb()
            await place(engine, 3, "n")
            await until(caught_up(engine, publisher))
            durable = engine.journal.durable_seq
        published = entries(server)
        last = journal_seqs(wal_dir)[-1]  # with the checkpoint written when it stopped
        # The window a consumer could have been in: the last MAXLEN entries when the
        # publisher found the stream gone, then on (`MAXLEN ~` may since have trimmed a
        # few of the oldest, never below MAXLEN).
        assert flushed_at - 1_000 < published[0][0] <= durable - 1_000 + 1 or (
            len(published) >= 1_000 and published[0][0] <= last - 1_000 + 1
        )
        assert [seq for seq, _ in published] == list(range(published[0][0], last + 1))
        # Its orders are shown as they stood (the fold was seeded from a checkpoint).
        by_seq = {m.seq: m for m in seen}
        for seq, fields in published:
            if seq in by_seq and "order_update" in fields:
                expected = [e for e in stream_events(by_seq[seq]) if e["type"] == "order_update"]
                assert fields["order_update"] == encode_json(expected[0])


async def test_retention_keeps_unpublished_segments_while_redis_is_down(wal_dir, tmp_path):
    with private_redis(tmp_path / "redis", started=False) as server:
        async with publishing(wal_dir, server.url, max_segment_bytes=4096, max_files=1) as (
            engine,
            publisher,
            _seen,
        ):
            await place(engine, 60, "r")
            segments = [s.first_seq for s in list_segments(wal_dir)[0] if s.first_seq]
            assert len(segments) > 3  # rotated well past max_files...
            assert min(segments) == 1  # ...and nothing unpublished deleted
            server.start()
            await until(caught_up(engine, publisher))
            await place(engine, 30, "s")  # rotations now delete what is published
            await until(caught_up(engine, publisher))
            assert min(s.first_seq for s in list_segments(wal_dir)[0] if s.first_seq) > 1
        published = [seq for seq, _ in entries(server)]
        assert published == list(range(1, published[-1] + 1))
        assert publisher.stats.missing_entries == 0


async def test_the_engine_restarted_resumes_after_the_last_id(wal_dir, tmp_path):
    with private_redis(tmp_path / "redis") as server:
        async with publishing(wal_dir, server.url) as (engine, publisher, first):
            await place(engine, 9, "a")
            await until(caught_up(engine, publisher))
        async with publishing(wal_dir, server.url) as (engine, publisher, second):
            await place(engine, 9, "b")
            await until(caught_up(engine, publisher))
            assert publisher.stats.republishes == 0
        published = [seq for seq, _ in entries(server)]
        assert published == journal_seqs(wal_dir)
        assert_matches_the_journal(server, wal_dir, first + second)


async def test_a_stream_ahead_of_the_journal_is_not_written_to(wal_dir, tmp_path):
    with private_redis(tmp_path / "redis") as server:
        server.client().xadd(STREAM, {"seq": "40"}, id="40-0")  # another journal's
        async with publishing(wal_dir, server.url) as (engine, publisher, seen):
            await until(lambda: publisher.stats.failures > 0)
            health = cache_health(publisher)
            assert (health.ok, health.status) == (True, "degraded")
            assert "found ahead of this journal" in health.detail
            await place(engine, 15, "x")  # trading goes on; the journal passes entry 40...
            assert engine.journal is not None and engine.journal.durable_seq > 40
            failures = publisher.stats.failures
            await until(lambda: publisher.stats.failures > failures)
            assert [seq for seq, _ in entries(server)] == [40]  # ...and still writes nothing
            server.client().delete(STREAM)  # what the operator is told to do
            await until(caught_up(engine, publisher))
        assert_matches_the_journal(server, wal_dir, seen)
