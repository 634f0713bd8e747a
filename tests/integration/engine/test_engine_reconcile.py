"""Reconciliation finds what the venue holds that the journal does not: orders open there
under ids we never had (reported, or cancelled with auto_cancel_orphaned) and balances
that differ (corrected to the venue's, journaled)."""

import asyncio
from collections.abc import Callable
from decimal import Decimal

import msgspec
import pytest

from tests.support.engine import engine_config, quote
from veloz.execution.venue import Venue, VenueOrder
from veloz.execution.venues.sim import SimVenue
from veloz.journal.framing import EntryType
from veloz.journal.verify import iterate_records
from veloz.model.commands import SubmitOrder
from veloz.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from veloz.runtime.client import LocalEngineClient
from veloz.runtime.live import LiveEngine

D = Decimal


def foreign_order(coid: str) -> VenueOrder:
    return VenueOrder(
        client_order_id=coid,
        symbol="BTCUSDT",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        qty=D("0.01"),
        price=D("40000"),
    )


async def place_behind_the_engines_back(engine: LiveEngine, coid: str) -> None:
    """An order placed at the venue by someone else (by hand, another program)."""
    venue = engine.venue
    assert isinstance(venue, SimVenue)
    await venue.submit(foreign_order(coid))
    assert await eventually(lambda ids: coid in ids, venue)


async def eventually(condition: Callable[[set[str]], bool], venue: Venue) -> bool:
    """Whether the ids of the venue's open orders come to satisfy `condition` within 2 s
    (the sim venue's requests and reports take a few loop iterations)."""
    for _ in range(2000):
        if condition({state.client_order_id for state in await venue.open_orders()}):
            return True
        await asyncio.sleep(0.001)
    return False


@pytest.mark.parametrize("auto_cancel", [False, True])
async def test_an_order_unknown_to_the_journal_is_reported_or_cancelled(wal_dir, auto_cancel):
    config = msgspec.structs.replace(engine_config(wal_dir), auto_cancel_orphaned=auto_cancel)
    engine = LiveEngine(config)
    await engine.start()
    try:
        engine.market.on_data(quote())
        await place_behind_the_engines_back(engine, "by-hand-1")
        await engine.reconcile_with_venue()

        found = await LocalEngineClient(engine).orphans()
        assert found.count == 1 and found.auto_cancel is auto_cancel
        orphan = found.orders[0]
        assert (orphan.client_order_id, orphan.symbol, orphan.side) == (
            "by-hand-1",
            "BTCUSDT",
            OrderSide.BUY,
        )
        assert (orphan.qty, orphan.price, orphan.status) == (
            D("0.01"),
            D("40000"),
            OrderStatus.ACCEPTED,
        )
        assert engine.oms.get("by-hand-1") is None  # reported, never adopted
        if auto_cancel:
            assert found.orphans_cancelled_total == 1
            assert await eventually(lambda ids: not ids, engine.venue)
        else:
            assert found.orphans_cancelled_total == 0
            assert await eventually(lambda ids: ids == {"by-hand-1"}, engine.venue)
    finally:
        await engine.stop()


async def test_our_own_open_orders_are_not_orphans(engine):
    await engine.submit(
        SubmitOrder(
            symbol="BTCUSDT",
            side=OrderSide.BUY,
            qty=D("0.01"),
            price=D("40000"),
            client_order_id="ours-1",
        )
    )
    await engine.execution.drain()
    await engine.reconcile_with_venue()
    found = await LocalEngineClient(engine).orphans()
    assert found.count == 0 and found.reconciliations == 2  # at start and now


async def test_a_balance_the_venue_disagrees_with_is_corrected_and_journaled(engine, wal_dir):
    venue = engine.venue
    assert isinstance(venue, SimVenue)
    before = {b.asset: b.total for b in engine.portfolio.balances()}
    # A deposit at the venue that the journal never saw.
    venue.credit("USDT", D("250"))
    await engine.reconcile_with_venue()

    found = await LocalEngineClient(engine).orphans()
    assert [(m.asset, m.journal, m.venue) for m in found.balance_mismatches] == [
        ("USDT", before["USDT"], before["USDT"] + 250)
    ]
    after = {b.asset: b.total for b in engine.portfolio.balances()}
    assert after["USDT"] == before["USDT"] + 250
    await engine.write_checkpoint()
    balance_sets = [r for _, r in iterate_records(wal_dir) if r.entry_type == EntryType.BalanceSet]
    assert balance_sets and b"USDT" in balance_sets[-1].payload
