"""The projector against real journals: every entry read once across rotations, the store
equal to what the engine holds, resuming after a crash, and what happens when entries
are gone before it read them."""

import functools
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import msgspec

from tests.support.engine import NO_LIMITS, engine_config, quote, wait_for
from veloz.engine.views.orders import OrderView
from veloz.journal.segments import list_segments
from veloz.journal.tail import JournalTail
from veloz.model.commands import CancelOrder, SubmitOrder
from veloz.model.enums import OPEN_STATUSES, OrderSide
from veloz.model.queries import OrderQuery, TradeQuery
from veloz.persistence.projector import Projector, ProjectorConfig, rebuild
from veloz.persistence.sqlite import SqliteStore
from veloz.runtime.live import LiveEngine


async def started(wal_dir: Path, **journal: int) -> LiveEngine:
    engine = LiveEngine(engine_config(wal_dir, NO_LIMITS, **journal))
    await engine.start()
    engine.market.on_data(quote())
    return engine


async def trade(engine: LiveEngine, count: int, prefix: str = "o") -> None:
    """Orders of every fate: filled at once, left resting, and cancelled."""
    for i in range(count):
        coid = f"{prefix}{i}"
        marketable = i % 3 == 0
        await engine.submit(
            SubmitOrder(
                symbol="BTCUSDT",
                side=OrderSide.BUY,
                qty=Decimal("0.010"),
                price=Decimal("50010") if marketable else Decimal("49000"),
                client_order_id=coid,
            )
        )
        if i % 3 == 2:
            await wait_for(functools.partial(accepted, engine, coid), engine)
            await engine.cancel(CancelOrder(client_order_id=coid))
    await wait_for(
        lambda: not any(o.status.name.startswith("PENDING") for o in engine.oms.all_orders()),
        engine,
    )


def accepted(engine: LiveEngine, client_order_id: str) -> bool:
    order = engine.oms.get(client_order_id)
    return order is not None and order.venue_order_id is not None


def durable(engine: LiveEngine) -> Callable[[], int]:
    journal = engine.journal
    assert journal is not None
    return lambda: journal.durable_seq


async def store_at(path: Path) -> SqliteStore:
    store = SqliteStore(str(path), time.time_ns)
    await store.connect()
    await store.migrate()
    return store


def views(orders: list) -> list[OrderView]:  # type: ignore[type-arg]
    return sorted((OrderView.of(o) for o in orders), key=lambda v: v.client_order_id)


async def test_the_tail_reads_every_entry_once_across_rotations(wal_dir):
    engine = await started(wal_dir, max_segment_bytes=4096, max_files=1000)
    await trade(engine, 60)
    await engine.stop()
    assert len(list_segments(wal_dir)[0]) > 5  # rotations happened
    tail = JournalTail(wal_dir, chunk_bytes=1024)  # small chunks: records cut at chunk ends
    seqs: list[int] = []
    while batch := tail.read(seqs[-1] if seqs else 0, limit=17).records:
        seqs += [r.seq for r in batch]
    assert seqs == list(range(1, engine.journal.next_seq))  # type: ignore[union-attr]
    bounded = JournalTail(wal_dir).read(0, up_to_seq=10, limit=1000)
    assert [r.seq for r in bounded.records] == list(range(1, 11))


async def test_the_tail_moves_on_when_retention_deletes_the_segment_it_finished(wal_dir):
    # Retention may delete the segment a reader has read to its end (its next entry is in
    # the following one): the reader must find that one, not wait for a rename.
    engine = await started(wal_dir, max_segment_bytes=4096, max_files=1000)
    await trade(engine, 30)
    await engine.stop()
    first, second = (s for s in list_segments(wal_dir)[0][:2])
    assert first.first_seq == 1 and second.first_seq is not None
    tail = JournalTail(wal_dir)
    read = tail.read(0, up_to_seq=second.first_seq - 1, limit=100_000)
    assert read.records[-1].seq == second.first_seq - 1
    first.path.unlink()
    following = tail.read(second.first_seq - 1, limit=5)
    assert [r.seq for r in following.records] == list(range(second.first_seq, second.first_seq + 5))
    assert following.missing is None


async def test_the_store_holds_what_the_engine_holds(wal_dir, tmp_path):
    engine = await started(wal_dir, max_segment_bytes=8192, max_files=1000)
    store = await store_at(tmp_path / "h.db")
    projector = Projector(
        store,
        wal_dir,
        durable(engine),
        ProjectorConfig(batch_entries=25),
    )
    await trade(engine, 45)
    assert await projector.catch_up()
    assert projector.lag() == 0
    assert views(await store.orders(OrderQuery())) == views(engine.oms.all_orders())
    fills = await store.trades(TradeQuery(limit=1000))
    assert sorted(f.trade_id for f in fills) == sorted(
        f.trade_id for f in engine.activity.recent_fills(1000)
    )
    open_ids = {o.client_order_id for o in await store.open_orders()}
    assert open_ids == {o.client_order_id for o in engine.oms.with_status(OPEN_STATUSES)}
    await engine.stop()
    await store.close()


async def test_a_projector_cut_off_mid_way_resumes_to_what_a_rebuild_makes(wal_dir, tmp_path):
    engine = await started(wal_dir, max_segment_bytes=8192, max_files=1000)
    await trade(engine, 30, "a")
    store = await store_at(tmp_path / "h.db")
    first = Projector(store, wal_dir, durable(engine), ProjectorConfig(batch_entries=7))
    for _ in range(4):
        await first.step()
    assert 0 < first.stats.high_water < durable(engine)()
    # A new projector (a restarted process) knows only what the store says.
    await trade(engine, 30, "b")
    second = Projector(store, wal_dir, durable(engine), ProjectorConfig(batch_entries=7))
    assert await second.catch_up()
    await engine.stop()
    assert await second.catch_up()  # the final checkpoint too
    fresh = await store_at(tmp_path / "fresh.db")
    await rebuild(fresh, wal_dir)
    assert await dump(store) == await dump(fresh)
    await store.close()
    await fresh.close()


async def test_entries_gone_before_projection_are_reported_and_orders_seeded(wal_dir, tmp_path):
    # Tiny segments and one kept file: retention deletes what no projector protected.
    engine = await started(wal_dir, max_segment_bytes=4096, max_files=1)
    await trade(engine, 60)
    await engine.stop()
    assert min(s.first_seq or 0 for s in list_segments(wal_dir)[0] if s.first_seq) > 1
    store = await store_at(tmp_path / "h.db")
    projector = Projector(store, wal_dir, lambda: None)
    assert await projector.catch_up()
    assert projector.stats.missing_entries > 0
    # Every order the checkpoint carried is in the store as the engine left it.
    stored = {v.client_order_id: v for v in views(await store.orders(OrderQuery()))}
    for order in engine.oms.all_orders():
        assert stored[order.client_order_id] == OrderView.of(order)
    await store.close()


async def test_retention_keeps_what_the_projector_has_not_read(wal_dir):
    engine = LiveEngine(engine_config(wal_dir, max_segment_bytes=4096, max_files=1))
    engine.journal_readers.append(lambda: 1)  # a reader that never moves on
    await engine.start()
    engine.market.on_data(quote())
    await trade(engine, 60)
    await engine.stop()
    first = min(s.first_seq for s in list_segments(wal_dir)[0] if s.first_seq)
    assert first == 1


async def dump(store: SqliteStore) -> tuple[object, ...]:
    orders = [msgspec.to_builtins(o) for o in await store.orders(OrderQuery())]
    fills = [msgspec.to_builtins(f) for f in await store.trades(TradeQuery(limit=100_000))]
    return orders, fills, await store.table_counts(), await store.high_water()
