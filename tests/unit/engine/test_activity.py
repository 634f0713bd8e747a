"""The activity ring: newest-first views, resume by sequence, and knowing when it cannot."""

from decimal import Decimal

from veloz.engine.activity import ActivityLog
from veloz.engine.bus import Journaled
from veloz.model.enums import LiquiditySide, OrderSide, TradingMode
from veloz.model.events import OrderAccepted, OrderFilled, TradingModeChanged
from veloz.model.sizes import deep_size


def accepted(seq: int) -> Journaled:
    return Journaled(seq, OrderAccepted(client_order_id=f"o{seq}", venue_order_id="V", ts_ns=seq))


def filled(seq: int) -> Journaled:
    return Journaled(
        seq,
        OrderFilled(
            client_order_id=f"o{seq}",
            trade_id=f"t{seq}",
            qty=Decimal(1),
            price=Decimal(2),
            fee=Decimal(0),
            fee_asset="USDT",
            liquidity=LiquiditySide.TAKER,
            symbol="BTCUSDT",
            side=OrderSide.BUY,
            ts_ns=seq,
        ),
    )


def test_views_are_newest_first_and_bounded():
    log = ActivityLog(max_events=3, max_fills=2)
    for seq in (1, 2, 4, 6):
        log.record(accepted(seq) if seq % 2 else filled(seq))
    assert [m.seq for m in log.recent_events(10)] == [6, 4, 2]
    assert [f.trade_id for f in log.recent_fills(10)] == ["t6", "t4"]
    assert [m.seq for m in log.recent_events(1)] == [6]


def test_non_order_events_are_not_activity():
    log = ActivityLog()
    log.record(Journaled(5, TradingModeChanged(mode=TradingMode.READONLY, reason="x", ts_ns=5)))
    assert log.recent_events(10) == [] and log.last_seq is None


def test_resume_returns_what_came_after_oldest_first_across_sequence_holes():
    log = ActivityLog(max_events=10)
    for seq in (3, 4, 7, 9):  # the holes are checkpoints and mode changes
        log.record(accepted(seq))
    assert [m.seq for m in log.since(4) or []] == [7, 9]
    assert [m.seq for m in log.since(5) or []] == [7, 9]
    assert log.since(9) == [] and log.since(12) == []
    assert [m.seq for m in log.since(0) or []] == [3, 4, 7, 9]  # nothing was ever evicted


def test_resume_from_before_what_the_ring_still_holds_is_refused():
    log = ActivityLog(max_events=2)
    for seq in (1, 2, 5):
        log.record(accepted(seq))
    assert log.since(0) is None  # event 1 is gone
    assert [m.seq for m in log.since(1) or []] == [2, 5]


def test_after_a_replay_from_a_checkpoint_older_ids_must_reset():
    log = ActivityLog()
    log.starts_after(40)  # replay began after the checkpoint at 40
    log.record(accepted(41))
    assert log.since(12) is None
    assert [m.seq for m in log.since(40) or []] == [41]


def test_a_byte_budget_keeps_the_newest_that_fit_and_resume_knows_what_left():
    one = deep_size(filled(1))
    log = ActivityLog(max_events=10_000, max_fills=10_000, max_bytes=one * 50)
    for seq in range(1, 1_001):
        log.record(filled(seq))
    events, fills = log.capacity
    assert 0 < events < 50 and 0 < fills < 10
    assert log.bytes_used <= one * 50 * 1.1  # an estimate, within its sampling error
    assert [m.seq for m in log.recent_events(1)] == [1_000]
    oldest_held = log.recent_events(10_000)[-1].seq
    assert log.since(oldest_held - 2) is None  # the client must re-fetch state
    assert [m.seq for m in log.since(oldest_held) or []][-1] == 1_000
