"""Restart and recovery: checkpoint replay equals full replay, damage starts READONLY,
and orders left in flight are reconciled with the venue by client order id."""

from decimal import Decimal
from pathlib import Path

import msgspec

from tests.support.engine import crash, engine_config, quote, wait_for, wait_for_status
from veloz.codec import encode_event
from veloz.engine.views.streams import stream_events
from veloz.journal.framing import Record
from veloz.journal.recovery import recover
from veloz.journal.segments import CURRENT_NAME, QUARANTINE_DIR
from veloz.journal.stats import JournalStats
from veloz.model.commands import CancelOrder, SubmitOrder
from veloz.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce, TradingMode
from veloz.model.errors import CommandRejected
from veloz.model.events import (
    BalanceSet,
    Event,
    OrderAccepted,
    OrderCancelRequested,
    OrderSubmitted,
)
from veloz.runtime.live import LiveEngine

D = Decimal


class FullReplayEngine(LiveEngine):
    """Ignores every checkpoint, so state is rebuilt from the first entry."""

    def _accept_checkpoint(self, record: Record) -> bool:
        return False


def state_of(engine: LiveEngine) -> tuple[object, object, object]:
    orders = sorted(
        msgspec.to_builtins(engine.oms.all_orders()), key=lambda o: o["client_order_id"]
    )
    portfolio = msgspec.to_builtins(engine.portfolio.snapshot())
    # The equity peak follows market marks, which are not journaled: only checkpoints carry
    # it, so a replay that ignores them cannot know it. Everything else must match.
    del portfolio["peak_equity"]
    return orders, portfolio, engine.mode


async def _trade_a_while(engine: LiveEngine) -> None:
    for i in range(60):
        side = OrderSide.BUY if i % 2 == 0 else OrderSide.SELL
        if i % 3 == 0:
            await engine.submit(
                SubmitOrder(
                    symbol="BTCUSDT",
                    side=OrderSide.BUY,
                    qty=D("0.01"),
                    order_type=OrderType.MARKET,
                    time_in_force=TimeInForce.IOC,
                    client_order_id=f"mkt-{i}",
                )
            )
        else:
            price = D("49900") + i if side is OrderSide.BUY else D("50100") + i
            if side is OrderSide.SELL:
                continue  # only buys rest: sells would need base we may not hold yet
            await engine.submit(
                SubmitOrder(
                    symbol="BTCUSDT",
                    side=side,
                    qty=D("0.01"),
                    price=price,
                    client_order_id=f"lim-{i}",
                )
            )
        if i % 10 == 9:
            engine.market.on_data(quote(bid=str(49900 + i), ask=str(49905 + i)))
    await wait_for(lambda: not engine.oms.with_status([OrderStatus.PENDING_NEW]), engine)
    await engine.cancel(CancelOrder(client_order_id="lim-2"))  # 49902: below every ask
    await wait_for_status(engine, "lim-2", OrderStatus.CANCELLED)


async def test_checkpoint_replay_equals_full_replay(wal_dir: Path):
    config = msgspec.structs.replace(
        engine_config(wal_dir, checkpoint_interval=25, max_files=1000, max_segment_bytes=16384),
        retained_final_orders=10,  # small, so eviction and many checkpoints both happen
    )
    first = LiveEngine(config)
    await first.start()
    first.market.on_data(quote())
    await _trade_a_while(first)
    await first.write_checkpoint()
    for i in range(3):  # entries after the newest checkpoint, then a crash
        await first.submit(
            SubmitOrder(
                symbol="BTCUSDT",
                side=OrderSide.BUY,
                qty=D("0.01"),
                price=D("49000"),
                client_order_id=f"tail-{i}",
            )
        )
    await wait_for_status(first, "tail-2", OrderStatus.ACCEPTED)
    await crash(first)
    assert first.journal_stats.checkpoints >= 2 and first.journal_stats.rotations > 0

    from_checkpoint = LiveEngine(config)
    await from_checkpoint.start()
    checkpoint_state = state_of(from_checkpoint)
    replayed_after_checkpoint = from_checkpoint.journal_stats.replayed_entries
    assert replayed_after_checkpoint > 0
    await from_checkpoint.stop()

    full = FullReplayEngine(config)
    await full.start()
    assert state_of(full) == checkpoint_state
    assert full.journal_stats.replayed_entries > replayed_after_checkpoint
    assert not full.journal_problems
    await full.stop()


async def test_damage_in_the_middle_starts_readonly_until_an_operator_clears_it(wal_dir):
    config = engine_config(wal_dir)
    first = LiveEngine(config)
    await first.start()
    first.market.on_data(quote())
    for i in range(10):
        await first.submit(
            SubmitOrder(
                symbol="BTCUSDT",
                side=OrderSide.BUY,
                qty=D("0.01"),
                price=D("49000"),
                client_order_id=f"d-{i}",
            )
        )
    await first.stop()
    current = wal_dir / CURRENT_NAME
    data = bytearray(current.read_bytes())
    data[len(data) // 3] ^= 0x55
    current.write_bytes(bytes(data))

    damaged = LiveEngine(config)
    await damaged.start()
    try:
        assert damaged.mode is TradingMode.READONLY and "journal damaged" in damaged.mode_reason
        assert damaged.journal_stats.corrupted_entries >= 1
        assert list((wal_dir / QUARANTINE_DIR).iterdir())
        try:
            await damaged.submit(
                SubmitOrder(symbol="BTCUSDT", side=OrderSide.BUY, qty=D("0.01"), price=D("49000"))
            )
            raise AssertionError("a damaged journal must refuse orders")
        except CommandRejected as exc:
            assert exc.code == "trading_disabled"
        await damaged.set_mode(TradingMode.ACTIVE, "checked the WAL", "operator")
    finally:
        await damaged.stop()

    cleared = LiveEngine(config)
    await cleared.start()
    assert cleared.mode is TradingMode.ACTIVE and not cleared.journal_problems
    await cleared.stop()


async def _write_journal(wal_dir: Path, events: list[Event]) -> None:
    _, writer = recover(engine_config(wal_dir).journal, JournalStats(), lambda r: False)
    writer.start()
    for event in events:
        await writer.append_durable(*encode_event(event), event.ts_ns)
    await writer.close()


def _submitted(coid: str, price: str = "49000") -> OrderSubmitted:
    return OrderSubmitted(
        client_order_id=coid,
        symbol="BTCUSDT",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        qty=D("0.01"),
        price=D(price),
        ts_ns=10,
    )


async def test_restart_reconciles_in_flight_orders_without_resending(wal_dir):
    await _write_journal(
        wal_dir,
        [
            BalanceSet(asset="USDT", total=D("100000"), ts_ns=1),
            _submitted("never-sent"),  # journaled, the process died before the venue saw it
            _submitted("resting"),
            OrderAccepted(client_order_id="resting", venue_order_id="V1", ts_ns=11),
            _submitted("cancelling"),
            OrderAccepted(client_order_id="cancelling", venue_order_id="V2", ts_ns=12),
            OrderCancelRequested(client_order_id="cancelling", ts_ns=13),
        ],
    )
    engine = LiveEngine(engine_config(wal_dir))
    await engine.start()
    try:
        never = engine.oms.get("never-sent")
        assert never is not None and never.status is OrderStatus.REJECTED
        assert never.reason == "not_at_venue" and engine.execution.sent_orders == 0
        await wait_for_status(engine, "cancelling", OrderStatus.CANCELLED)
        resting = engine.oms.get("resting")
        assert resting is not None and resting.status is OrderStatus.ACCEPTED
        state = await engine.venue.query("resting", "BTCUSDT")
        assert state is not None and state.status is OrderStatus.ACCEPTED
        engine.market.on_data(quote(bid="48990", ask="48995"))
        await wait_for_status(engine, "resting", OrderStatus.FILLED)
        locked = {b.asset: b.locked for b in engine.portfolio.balances()}
        assert locked["USDT"] == 0
    finally:
        await engine.stop()


async def test_replayed_events_can_be_resumed_and_render_as_stream_events(wal_dir):
    first = LiveEngine(engine_config(wal_dir))
    await first.start()
    await first.write_checkpoint()
    checkpoint_seq = first.journal.next_seq - 1 if first.journal else 0
    await first.submit(
        SubmitOrder(
            symbol="BTCUSDT",
            side=OrderSide.BUY,
            qty=D("0.01"),
            price=D("49000"),
            client_order_id="after-cp",
        )
    )
    await wait_for_status(first, "after-cp", OrderStatus.ACCEPTED)
    await crash(first)

    restarted = LiveEngine(engine_config(wal_dir))
    await restarted.start()
    try:
        resumed = restarted.activity.since(checkpoint_seq)
        assert resumed is not None
        rendered = [e for m in resumed for e in stream_events(m)]
        updates = [e for e in rendered if e["type"] == "order_update"]
        assert [(u["event"], u["status"]) for u in updates] == [
            ("OrderSubmitted", "PENDING_NEW"),
            ("OrderAccepted", "ACCEPTED"),
        ]
        assert restarted.activity.since(checkpoint_seq - 5) is None  # from before: reset
    finally:
        await restarted.stop()
