"""The order path through the real engine: journal files on disk, the sim venue, replay."""

import asyncio
import errno
import os
import re
from decimal import Decimal

import pytest

from tests.support.engine import engine_config, journaled, quote, wait_for, wait_for_status
from veloz.journal.framing import EntryType
from veloz.journal.verify import iterate_records
from veloz.model.commands import CancelOrder, SubmitOrder, parse_submit_order
from veloz.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce, TradingMode
from veloz.model.errors import CommandRejected
from veloz.model.events import OrderSubmitted
from veloz.runtime.live import LiveEngine

D = Decimal


def limit(
    qty: str,
    price: str,
    coid: str | None = None,
    side: OrderSide = OrderSide.BUY,
    symbol: str = "BTCUSDT",
) -> SubmitOrder:
    return SubmitOrder(symbol=symbol, side=side, qty=D(qty), price=D(price), client_order_id=coid)


def market(qty: str, coid: str, side: OrderSide = OrderSide.BUY) -> SubmitOrder:
    return SubmitOrder(
        symbol="BTCUSDT",
        side=side,
        qty=D(qty),
        order_type=OrderType.MARKET,
        time_in_force=TimeInForce.IOC,
        client_order_id=coid,
    )


async def test_ack_only_after_the_order_is_durable(engine, wal_dir):
    ack = await engine.submit(limit("0.01", "49000", "rest-1"))
    assert ack.status is OrderStatus.PENDING_NEW and ack.created
    on_disk = [r for _, r in iterate_records(wal_dir) if r.entry_type == EntryType.OrderNew]
    assert len(on_disk) == 1 and b"rest-1" in on_disk[0].payload
    await wait_for_status(engine, "rest-1", OrderStatus.ACCEPTED)
    assert engine.portfolio.balances()[-1].locked == D("490.00")


async def test_an_order_off_the_grid_is_journaled_and_answered_rounded(engine, wal_dir):
    # The sim instrument's step is 0.00001 and its tick 0.01: size down, a buy's price down.
    await engine.submit(limit("0.0100099", "49000.019", "round-1"))
    order = engine.oms.get("round-1")
    assert order is not None and (order.order_qty, order.limit_price) == (D("0.01"), D("49000.01"))
    on_disk = [r for _, r in iterate_records(wal_dir) if r.entry_type == EntryType.OrderNew]
    assert len(on_disk) == 1 and b"49000.01" in on_disk[0].payload
    assert b"49000.019" not in on_disk[0].payload


async def test_marketable_order_fills_and_updates_position(engine):
    await engine.submit(market("0.1", "m-1"))
    await wait_for_status(engine, "m-1", OrderStatus.FILLED)
    order = engine.oms.get("m-1")
    assert order is not None and order.executed_qty == D("0.1") and order.avg_price == D("50001")
    position = engine.portfolio.position("BTCUSDT")
    assert position is not None and position.qty == D("0.1") - order.fee


async def test_resting_order_fills_when_the_market_crosses_it(engine):
    await engine.submit(limit("0.2", "49990", "rest-2"))
    await wait_for_status(engine, "rest-2", OrderStatus.ACCEPTED)
    engine.market.on_data(quote(bid="49980", ask="49985"))
    await wait_for_status(engine, "rest-2", OrderStatus.FILLED)
    assert engine.oms.get("rest-2").avg_price == D("49990")


async def test_same_id_same_params_is_idempotent(engine, wal_dir):
    first = await engine.submit(limit("0.01", "49000", "idem-1"))
    entries = len(list(iterate_records(wal_dir)))
    again = await engine.submit(limit("0.01", "49000", "idem-1"))
    assert again.client_order_id == first.client_order_id and not again.created
    assert len(list(iterate_records(wal_dir))) == entries
    assert engine.execution.sent_orders <= 1


async def test_concurrent_duplicates_create_one_order(engine):
    acks = await asyncio.gather(
        *(engine.submit(limit("0.01", "49000", "dup-c")) for _ in range(20))
    )
    assert sum(a.created for a in acks) == 1 and len(engine.oms) == 1


async def test_same_id_different_params_is_refused(engine):
    await engine.submit(limit("0.01", "49000", "idem-2"))
    with pytest.raises(CommandRejected) as raised:
        await engine.submit(limit("0.02", "49000", "idem-2"))
    assert raised.value.code == "duplicate_client_order_id"
    assert engine.oms.get("idem-2").order_qty == D("0.01")


async def test_missing_client_order_id_is_generated_and_unique(engine):
    acks = [await engine.submit(limit("0.01", "49000")) for _ in range(3)]
    ids = {a.client_order_id for a in acks}
    assert len(ids) == 3
    assert all(re.fullmatch(r"[A-Za-z0-9._:/-]{1,36}", i) for i in ids)


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (limit("0.01", "49000", symbol="DOGEUSDT"), "unknown_symbol"),
        (limit("0.000001", "49000"), "bad_params"),  # below the step
        (limit("0.01", "0.001"), "bad_params"),  # rounds to a price of 0 on the tick
        (limit("0.00001", "49000"), "bad_params"),  # below the minimum notional
    ],
)
async def test_bad_orders_change_nothing(engine, wal_dir, command, code):
    before = list(iterate_records(wal_dir))
    with pytest.raises(CommandRejected) as raised:
        await engine.submit(command)
    assert raised.value.code == code
    assert list(iterate_records(wal_dir)) == before and len(engine.oms) == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"side": "BUY", "symbol": "BTCUSDT", "qty": "-1", "price": "1"}, "greater than zero"),
        ({"side": "BUY", "symbol": "BTCUSDT", "qty": "abc", "price": "1"}, "must be a number"),
        ({"side": "BUY", "symbol": "BTCUSDT", "qty": "NaN", "price": "1"}, "finite"),
        ({"side": "HOLD", "symbol": "BTCUSDT", "qty": "1", "price": "1"}, "side must be one of"),
        ({"side": "BUY", "symbol": "BTCUSDT", "qty": "1", "price": "1", "type": "STOP"}, "type"),
        ({"side": "BUY", "symbol": "BTCUSDT", "qty": "1"}, "price is required"),
        (
            {
                "side": "BUY",
                "symbol": "BTCUSDT",
                "qty": "1",
                "price": "1",
                "client_order_id": "x" * 37,
            },
            "client_order_id",
        ),
        (
            {
                "side": "BUY",
                "symbol": "BTCUSDT",
                "qty": "1",
                "price": "1",
                "client_order_id": "bad id!",
            },
            "client_order_id",
        ),
        ({"side": "BUY", "symbol": "BTCUSDT", "qty": "1", "price": "1", "extra": 1}, "unknown"),
    ],
)
def test_malformed_orders_are_refused_with_the_field_named(fields, message):
    with pytest.raises(CommandRejected, match=message) as raised:
        parse_submit_order(fields)
    assert raised.value.code == "bad_params"


async def test_cancel_rules(engine):
    with pytest.raises(CommandRejected) as unknown:
        await engine.cancel(CancelOrder(client_order_id="nope"))
    assert unknown.value.code == "not_found"
    await engine.submit(limit("0.01", "49000", "c-1"))
    await wait_for_status(engine, "c-1", OrderStatus.ACCEPTED)
    ack = await engine.cancel(CancelOrder(client_order_id="c-1"))
    assert ack.status is OrderStatus.PENDING_CANCEL
    await wait_for_status(engine, "c-1", OrderStatus.CANCELLED)
    assert engine.portfolio.balances()[-1].locked == 0
    with pytest.raises(CommandRejected) as final:
        await engine.cancel(CancelOrder(client_order_id="c-1"))
    assert final.value.code == "order_final"


async def test_readonly_denies_orders_allows_cancels_and_survives_restart(engine, wal_dir):
    await engine.submit(limit("0.01", "49000", "ro-1"))
    await wait_for_status(engine, "ro-1", OrderStatus.ACCEPTED)
    await engine.set_mode(TradingMode.READONLY, "operator check", "test")
    with pytest.raises(CommandRejected) as denied:
        await engine.submit(limit("0.01", "49000", "ro-2"))
    assert (
        denied.value.code == "trading_disabled" and engine.stats.rejections["trading_disabled"] == 1
    )
    assert engine.oms.get("ro-2") is None
    await engine.cancel(CancelOrder(client_order_id="ro-1"))
    await wait_for_status(engine, "ro-1", OrderStatus.CANCELLED)
    await engine.stop()
    restarted = LiveEngine(engine_config(wal_dir))
    await restarted.start()
    try:
        assert restarted.mode is TradingMode.READONLY and restarted.mode_reason == "operator check"
        denials = [r for _, r in iterate_records(wal_dir) if r.entry_type == EntryType.OrderDenied]
        assert len(denials) == 1 and b"ro-2" in denials[0].payload
    finally:
        await restarted.stop()


async def test_events_are_published_in_journal_order_after_durability(engine):
    seen = journaled(engine)
    await engine.submit(market("0.05", "pub-1"))
    await wait_for_status(engine, "pub-1", OrderStatus.FILLED)
    await wait_for(lambda: any(m.event.__class__.__name__ == "OrderFilled" for m in seen), engine)
    seqs = [m.seq for m in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    kinds = [type(m.event).__name__ for m in seen if m.order is not None]
    assert kinds[:3] == ["OrderSubmitted", "OrderAccepted", "OrderFilled"]


async def test_disk_full_refuses_orders_and_acknowledges_nothing(engine, monkeypatch):
    def disk_full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(CommandRejected) as raised:
        await engine.submit(limit("0.01", "49000", "full-1"))
    assert raised.value.code == "journal_unavailable" and "No space left" in raised.value.message
    assert engine.oms.get("full-1") is None and engine.execution.sent_orders == 0
    with pytest.raises(CommandRejected) as again:
        await engine.submit(limit("0.01", "49000", "full-2"))
    assert again.value.code == "journal_unavailable"
    assert engine.portfolio.balances()[-1].locked == 0


async def test_unwritable_journal_directory_refuses_orders(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    broken = LiveEngine(engine_config(blocker / "wal"))
    await broken.start()
    try:
        assert broken.journal is None and broken.journal_error
        with pytest.raises(CommandRejected) as raised:
            await broken.submit(limit("0.01", "49000", "x-1"))
        assert raised.value.code == "journal_unavailable"
        assert "cannot open the journal" in raised.value.message
    finally:
        await broken.stop()


async def test_equity_peak_follows_marks_and_fills_and_survives_a_restart(engine, wal_dir):
    assert engine.portfolio.peak_equity == D("100000")  # seeded USDT, valued at 1
    await engine.submit(market("1", "eq-1"))
    await wait_for_status(engine, "eq-1", OrderStatus.FILLED)
    engine.market.on_data(quote(bid="60000", ask="60001"))
    peak = engine.portfolio.peak_equity
    assert peak > D("109000")  # ~1 BTC bought near 50,001, now marked near 60,000
    engine.market.on_data(quote(bid="40000", ask="40001"))
    assert engine.portfolio.peak_equity == peak and engine.portfolio.drawdown() > 0
    await engine.stop()
    restarted = LiveEngine(engine_config(wal_dir))
    await restarted.start()
    try:
        assert restarted.portfolio.peak_equity == peak
    finally:
        await restarted.stop()


async def test_commands_wait_for_ready_and_stop_at_shutdown(wal_dir):
    engine = LiveEngine(engine_config(wal_dir))
    with pytest.raises(CommandRejected) as early:
        await engine.submit(limit("0.01", "49000", "early"))
    assert early.value.code == "not_ready"
    await engine.start()
    await engine.stop()
    with pytest.raises(CommandRejected) as late:
        await engine.cancel(CancelOrder(client_order_id="late"))
    assert late.value.code == "shutting_down"
    assert len(engine.oms) == 0


async def test_every_order_of_overlapping_batches_is_sent_and_published_once(engine):
    seen = journaled(engine)
    acks = await asyncio.gather(
        *(engine.submit(limit("0.001", "40000", f"batch-{i}")) for i in range(300))
    )
    assert len(acks) == 300 and engine.journal_stats.batch_size.count > 1  # several batches
    await wait_for(lambda: engine.execution.sent_orders == 300, engine)
    submitted = [m.event.client_order_id for m in seen if isinstance(m.event, OrderSubmitted)]
    assert sorted(submitted) == sorted(f"batch-{i}" for i in range(300))


async def test_closing_fills_are_counted_won_or_lost(engine):
    await engine.submit(market("0.2", "open"))
    await wait_for_status(engine, "open", OrderStatus.FILLED)
    assert engine.stats.trades_closed == 0  # opening a position realises nothing
    engine.market.on_data(quote(bid="51000", ask="51001"))
    await engine.submit(market("0.1", "win", side=OrderSide.SELL))
    await wait_for_status(engine, "win", OrderStatus.FILLED)
    engine.market.on_data(quote(bid="49000", ask="49001"))
    await engine.submit(market("0.05", "loss", side=OrderSide.SELL))
    await wait_for_status(engine, "loss", OrderStatus.FILLED)
    assert (engine.stats.trades_closed, engine.stats.trades_won) == (2, 1)
