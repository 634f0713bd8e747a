"""The stream hub on a real engine: resume (backlog, then live, no gap and no duplicate;
`reset` when too old), per-client bounded mailboxes that drop only the slow client, type
filters, keep-alive and shutdown."""

import asyncio
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from tests.support.engine import engine_config, journaled, quote, wait_for_status
from veloz.api.stream_hub import (
    KEEPALIVE_FRAME,
    Closed,
    Mailbox,
    QueuedBytes,
    StreamHub,
    sse_frame,
)
from veloz.model.commands import SubmitOrder
from veloz.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from veloz.runtime.client import LocalEngineClient
from veloz.runtime.live import LiveEngine


def resting(coid: str) -> SubmitOrder:
    return SubmitOrder(
        symbol="BTCUSDT",
        side=OrderSide.BUY,
        qty=Decimal("0.01"),
        price=Decimal("40000"),
        client_order_id=coid,
    )


def marketable(coid: str) -> SubmitOrder:
    return SubmitOrder(
        symbol="BTCUSDT",
        side=OrderSide.BUY,
        qty=Decimal("0.01"),
        order_type=OrderType.MARKET,
        time_in_force=TimeInForce.IOC,
        client_order_id=coid,
    )


async def place(engine: LiveEngine, *coids: str) -> None:
    for coid in coids:
        await engine.submit(resting(coid))
        await wait_for_status(engine, coid, OrderStatus.ACCEPTED)


def ids(chunks: list[bytes]) -> list[int]:
    return [int(i) for i in re.findall(rb"^id: (\d+)$", b"".join(chunks), re.MULTILINE)]


def types(chunks: list[bytes]) -> list[str]:
    return [t.decode() for t in re.findall(rb"^event: (\w+)$", b"".join(chunks), re.MULTILINE)]


def journal_seqs(engine: LiveEngine) -> list[int]:
    return [m.seq for m in reversed(engine.activity.recent_events(1_000))]


def test_a_mailbox_is_bounded_taken_in_batches_and_empty_once_closed():
    mailbox: Mailbox[bytes] = Mailbox(2)
    assert mailbox.offer(b"1") and mailbox.offer(b"2")
    assert not mailbox.offer(b"3")
    mailbox.close(Closed.SLOW)
    mailbox.close(Closed.CLIENT)
    assert mailbox.closed is Closed.SLOW
    assert mailbox.offer(b"4")  # ignored, not "full"
    assert asyncio.run(mailbox.take()) == []


async def test_the_hubs_mailboxes_together_hold_at_most_their_bytes():
    queued = QueuedBytes(limit=10)
    first: Mailbox[bytes] = Mailbox(100, queued)
    second: Mailbox[str] = Mailbox(100, queued)
    assert first.offer(b"abcd") and second.offer("efgh")
    assert queued.bytes == 8
    assert not second.offer("ijk")  # 11 bytes: over, whoever asks
    assert first.offer(b"ij")
    assert await second.take() == ["efgh"] and queued.bytes == 6
    first.close(Closed.SLOW)  # a dropped client's frames are freed
    assert queued.bytes == 0 and second.offer("0123456789")


async def test_take_returns_what_is_queued_once_woken():
    mailbox: Mailbox[bytes] = Mailbox(10)
    taking = asyncio.create_task(mailbox.take())
    await asyncio.sleep(0)
    mailbox.offer(b"1")
    mailbox.offer(b"2")
    await asyncio.sleep(0)
    assert not taking.done()  # offering does not wake: the hub decides when (below half)
    mailbox.wake()
    assert await taking == [b"1", b"2"]
    mailbox.offer(b"3")
    assert await mailbox.take() == [b"3"]  # something queued: no waiting at all


async def test_a_mailbox_half_full_wakes_its_taker_at_once():
    mailbox: Mailbox[bytes] = Mailbox(10)
    taking = asyncio.create_task(mailbox.take())
    await asyncio.sleep(0)
    for n in range(4):
        mailbox.offer(b"%d" % n)
    await asyncio.sleep(0)
    assert not taking.done()
    mailbox.offer(b"4")  # the fifth of ten: a burst, whenever the hub would wake it
    assert await asyncio.wait_for(taking, 1) == [b"0", b"1", b"2", b"3", b"4"]


async def test_after_a_quiet_spell_an_event_goes_out_at_once_then_wakes_are_batched(engine):
    hub = StreamHub(LocalEngineClient(engine), asyncio.Event(), flush_interval_s=0.2)
    sse = hub.open_sse(None, None)
    engine.market.on_data(quote(bid="50000.1"))
    assert len(await sse.mailbox.take()) == 1
    taking = asyncio.create_task(sse.mailbox.take())
    await asyncio.sleep(0)  # waiting
    engine.market.on_data(quote(bid="50000.2"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not taking.done()  # within the flush interval: held back
    engine.market.on_data(quote(bid="50000.3"))
    assert [b"50000.2" in c or b"50000.3" in c for c in await taking] == [True, True]
    hub.close(sse.mailbox)


async def test_resume_sends_what_came_after_the_id_then_live_without_gap_or_duplicate(engine):
    published = journaled(engine)
    await place(engine, "r0", "r1", "r2")
    hub = StreamHub(LocalEngineClient(engine), asyncio.Event())
    sse = hub.open_sse(None, published[1].seq)
    assert ids(sse.backlog) == [m.seq for m in published[2:]]
    assert set(types(sse.backlog)) == {"order_update"}
    # A live copy of an event the backlog already holds is dropped by its sequence.
    engine.bus.publish(published[-1])
    await place(engine, "r3")
    live = await sse.mailbox.take()
    assert ids(sse.backlog + live) == list(dict.fromkeys(m.seq for m in published[2:]))
    hub.close(sse.mailbox)


async def test_resume_from_the_newest_id_has_no_backlog_and_misses_nothing_live(engine):
    await place(engine, "n0")
    hub = StreamHub(LocalEngineClient(engine), asyncio.Event())
    sse = hub.open_sse(None, journal_seqs(engine)[-1])
    assert sse.backlog == []
    await place(engine, "n1")
    assert ids(await sse.mailbox.take()) == journal_seqs(engine)[-2:]
    hub.close(sse.mailbox)


async def test_resume_from_before_the_replay_buffer_sends_one_reset(wal_dir):
    engine = LiveEngine(msgspec.structs.replace(engine_config(wal_dir), activity_events=2))
    await engine.start()
    try:
        engine.market.on_data(quote())
        await place(engine, "o0", "o1")
        hub = StreamHub(LocalEngineClient(engine), asyncio.Event())
        sse = hub.open_sse(None, 0)  # o0's events have left the ring
        assert types(sse.backlog) == ["reset"]
        last_seq = engine.activity.last_seq
        assert last_seq is not None and ids(sse.backlog) == [last_seq]
        assert b'"last_seq":%d' % last_seq in sse.backlog[0]
        await place(engine, "o2")  # then live, as usual
        assert ids(await sse.mailbox.take()) == journal_seqs(engine)[-2:]
        hub.close(sse.mailbox)
    finally:
        await engine.stop()


async def test_a_full_mailbox_drops_only_that_client_and_never_blocks_the_publisher(engine):
    hub = StreamHub(LocalEngineClient(engine), asyncio.Event(), mailbox_size=3)
    fast, slow = hub.open_sse(None, None), hub.open_sse(None, None)
    orders, market = hub.open_orders(), hub.open_market()
    hub.watch(market, [("BTCUSDT", "book_top")])
    received = []
    for burst in range(4):
        for i in range(2):  # the publisher is synchronous: it cannot wait on anyone
            engine.market.on_data(quote(bid=str(50000 + burst * 2 + i), ask="50010"))
        received += await fast.mailbox.take()
        if burst < 2:  # the WebSocket client keeps up with two bursts, then stops reading
            assert len(await market.take()) == 2
    assert len(received) == 8
    assert slow.mailbox.closed is Closed.SLOW and await slow.mailbox.take() == []
    assert market.closed is Closed.SLOW
    assert fast.mailbox.closed is None and orders.closed is None
    assert hub.slow_dropped == 2 and hub.sse_clients == 1 and hub.ws_clients == 1
    hub.close(fast.mailbox)
    hub.close(orders)


async def test_frames_over_the_streams_share_drop_the_client_that_would_exceed_it(engine):
    frame = len(sse_frame("market", {"symbol": "BTCUSDT"}))  # roughly one quote's frame
    hub = StreamHub(LocalEngineClient(engine), asyncio.Event(), max_queued_bytes=frame * 40)
    reader, idle = hub.open_sse(None, None), hub.open_sse(None, None)
    for i in range(100):  # mailboxes hold 1,000 frames each: only the bytes bind
        engine.market.on_data(quote(bid=str(50000 + i), ask="50200"))
        await reader.mailbox.take()
        assert hub.queued_bytes <= frame * 40
    assert idle.mailbox.closed is Closed.SLOW and reader.mailbox.closed is None
    assert hub.queued_bytes == 0 and hub.slow_dropped == 1
    hub.close(reader.mailbox)


async def test_a_client_gets_only_the_types_it_asked_for(engine):
    hub = StreamHub(LocalEngineClient(engine), asyncio.Event())
    fills, everything = hub.open_sse(frozenset({"fill"}), None), hub.open_sse(None, None)
    # Others asking for the same or for other types (their chunks are built once a set).
    fills_too = hub.open_sse(frozenset({"fill"}), None)
    updates = hub.open_sse(frozenset({"order_update"}), None)
    engine.market.on_data(quote(bid="50000.5"))
    await engine.submit(marketable("f1"))
    await wait_for_status(engine, "f1", OrderStatus.FILLED)
    assert types(await fills.mailbox.take()) == ["fill"]
    assert types(await fills_too.mailbox.take()) == ["fill"]
    assert set(types(await updates.mailbox.take())) == {"order_update"}
    seen = await everything.mailbox.take()
    assert types(seen)[0] == "market" and "fill" in types(seen)
    assert b"event: market\n" in seen[0] and not seen[0].startswith(b"id:")
    for client in (fills, fills_too, updates, everything):
        hub.close(client.mailbox)


async def test_orders_socket_messages_are_order_updates_and_fills(engine):
    hub = StreamHub(LocalEngineClient(engine), asyncio.Event())
    orders = hub.open_orders()
    engine.market.on_data(quote(bid="50000.5"))  # market data is not for this stream
    await engine.submit(marketable("w1"))
    await wait_for_status(engine, "w1", OrderStatus.FILLED)
    messages = [msgspec.json.decode(text) for text in await orders.take()]
    assert {m["type"] for m in messages} == {"order_update", "fill"}
    assert all(m["client_order_id"] == "w1" for m in messages)
    hub.close(orders)


async def test_idle_sse_clients_get_keep_alive_comments(engine):
    hub = StreamHub(LocalEngineClient(engine), asyncio.Event(), keepalive_s=0.01)
    sse, orders = hub.open_sse(None, None), hub.open_orders()
    assert await sse.mailbox.take() == [KEEPALIVE_FRAME]
    hub.close(sse.mailbox)
    hub.close(orders)


async def test_shutdown_ends_every_stream_and_refuses_new_ones(engine):
    shutdown = asyncio.Event()
    hub = StreamHub(LocalEngineClient(engine), shutdown)
    mailboxes: list[Mailbox[Any]] = [
        hub.open_sse(None, None).mailbox,
        hub.open_orders(),
        hub.open_market(),
    ]
    shutdown.set()
    for mailbox in mailboxes:
        assert await mailbox.take() == []
        assert mailbox.closed is Closed.SHUTDOWN
    assert hub.sse_clients == hub.ws_clients == 0
    late = hub.open_orders()
    assert late.closed is Closed.SHUTDOWN


@pytest.mark.parametrize("kind", ["sse", "orders", "market"])
async def test_the_last_client_out_unsubscribes_the_hub_from_the_bus(engine, kind):
    subscribed = len(engine.bus._handlers)
    hub = StreamHub(LocalEngineClient(engine), asyncio.Event())
    openers: dict[str, Callable[[], Mailbox[Any]]] = {
        "sse": lambda: hub.open_sse(None, None).mailbox,
        "orders": hub.open_orders,
        "market": hub.open_market,
    }
    mailbox = openers[kind]()
    assert len(engine.bus._handlers) == subscribed + 1
    hub.close(mailbox)
    assert len(engine.bus._handlers) == subscribed
