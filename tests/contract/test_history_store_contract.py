"""The history store contract: SQLite and PostgreSQL pass the same tests.

In CI the PostgreSQL half must run: a missing server fails it (tests/support/postgres.py).
"""

import time
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from veloz.model.enums import (
    FINAL_STATUSES,
    LiquiditySide,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
    TradingMode,
)
from veloz.model.events import OrderAccepted, OrderFilled, OrderSubmitted
from veloz.model.orders import Order
from veloz.model.queries import AuditQuery, OrderQuery, TradeQuery
from veloz.persistence.postgres import PostgresStore
from veloz.persistence.sqlite import SqliteStore
from veloz.persistence.store import (
    AuditRecord,
    BalanceSnapshot,
    FillRow,
    HistoryStore,
    ModeChangeRow,
    OrderRow,
    PortfolioSnapshot,
    PositionSnapshot,
    ProjectionBatch,
    StoreUnavailable,
)

T0 = 1_790_000_000_000_000_000


def submitted(coid: str, ts_ns: int, symbol: str = "BTCUSDT", qty: str = "0.0100") -> Order:
    return Order.from_submitted(
        OrderSubmitted(
            ts_ns=ts_ns,
            client_order_id=coid,
            symbol=symbol,
            side=OrderSide.BUY,
            order_type=OrderType.LIMIT,
            time_in_force=TimeInForce.GTC,
            qty=Decimal(qty),
            price=Decimal("50000.10"),
            strategy_id="grid-1",
        )
    )


def fill(order: Order, trade_id: str, qty: str, ts_ns: int) -> OrderFilled:
    event = OrderFilled(
        ts_ns=ts_ns,
        client_order_id=order.client_order_id,
        trade_id=trade_id,
        qty=Decimal(qty),
        price=Decimal("50000.10"),
        fee=Decimal("0.00000500"),
        fee_asset="BTC",
        liquidity=LiquiditySide.MAKER,
        symbol=order.symbol,
        side=order.side,
    )
    if order.status is OrderStatus.PENDING_NEW:
        order.apply(
            OrderAccepted(ts_ns=ts_ns, client_order_id=order.client_order_id, venue_order_id="v1")
        )
    order.apply(event)
    return event


async def test_migrations_apply_once_and_are_listed(store: HistoryStore):
    assert await store.migrate() == []  # the fixture applied them already
    listed = await store.migrations()
    assert (listed[0].version, listed[0].name) == (1, "initial")
    assert all(m.applied_ns is not None for m in listed)
    assert await store.high_water() == 0


async def test_a_batch_reads_back_exactly(store: HistoryStore):
    order = submitted("a1", T0)
    first = fill(order, "t1", "0.0040", T0 + 10)
    await store.apply(
        ProjectionBatch(
            last_seq=7,
            orders=[OrderRow.of(order, 7)],
            fills=[FillRow(6, first)],
            mode_changes=[
                ModeChangeRow(
                    journal_seq=5, ts_ns=T0, mode=TradingMode.READONLY, reason="r", actor="ops"
                )
            ],
        )
    )
    assert await store.high_water() == 7
    [stored] = await store.orders(OrderQuery())
    assert stored == msgspec.structs.replace(order, trade_ids=[])
    assert str(stored.order_qty) == "0.0100"  # the scale survives, not just the value
    assert str(stored.executed_qty) == "0.0040"
    assert stored.avg_price == Decimal("50000.10")
    [trade] = await store.trades(TradeQuery())
    assert trade == first
    assert str(trade.fee) == "0.00000500"
    counts = await store.table_counts()
    assert (counts["orders"], counts["fills"], counts["mode_changes"]) == (1, 1, 1)


async def test_replaying_a_batch_changes_nothing(store: HistoryStore):
    order = submitted("a1", T0)
    older = OrderRow.of(order, 3)
    first = fill(order, "t1", "0.0100", T0 + 10)
    newer = OrderRow.of(order, 4)
    batch = ProjectionBatch(last_seq=4, orders=[newer], fills=[FillRow(4, first)])
    await store.apply(batch)
    await store.apply(batch)
    await store.apply(ProjectionBatch(last_seq=3, orders=[older]))  # an older entry, again
    assert await store.high_water() == 4
    [stored] = await store.orders(OrderQuery())
    assert stored.status is OrderStatus.FILLED
    assert (await store.table_counts())["fills"] == 1


async def test_open_orders_come_back_with_their_trade_ids(store: HistoryStore):
    working = submitted("w1", T0)
    fill(working, "t1", "0.0040", T0 + 1)
    fill(working, "t2", "0.0010", T0 + 2)
    done = submitted("d1", T0 + 3)
    last = fill(done, "t3", "0.0100", T0 + 4)
    await store.apply(
        ProjectionBatch(
            last_seq=9,
            orders=[OrderRow.of(working, 8), OrderRow.of(done, 9)],
            fills=[FillRow(9, last)]
            + [
                FillRow(
                    n + 5,
                    OrderFilled(
                        trade_id=t,
                        client_order_id="w1",
                        symbol="BTCUSDT",
                        side=OrderSide.BUY,
                        qty=Decimal(q),
                        price=Decimal("50000.10"),
                        fee=Decimal(0),
                        fee_asset="BTC",
                        liquidity=LiquiditySide.TAKER,
                        ts_ns=T0 + n,
                    ),
                )
                for n, (t, q) in enumerate([("t1", "0.0040"), ("t2", "0.0010")], start=1)
            ],
        )
    )
    [open_order] = await store.open_orders()
    assert open_order == working  # the state machine's own order, trade ids included
    assert open_order.trade_ids == ["t1", "t2"]


async def test_orders_filter_and_page_newest_first(store: HistoryStore):
    orders = [submitted(f"o{i}", T0 + i, "ETHUSDT" if i % 3 == 0 else "BTCUSDT") for i in range(10)]
    for i in (1, 4, 7):
        fill(orders[i], f"t{i}", "0.0100", T0 + 100 + i)
    await store.apply(
        ProjectionBatch(last_seq=10, orders=[OrderRow.of(o, i + 1) for i, o in enumerate(orders)])
    )
    newest = await store.orders(OrderQuery(limit=3))
    assert [o.client_order_id for o in newest] == ["o9", "o8", "o7"]
    page = await store.orders(OrderQuery(limit=3, before_ts_ns=newest[-1].created_ts_ns))
    assert [o.client_order_id for o in page] == ["o6", "o5", "o4"]
    final = await store.orders(OrderQuery(statuses=FINAL_STATUSES))
    assert [o.client_order_id for o in final] == ["o7", "o4", "o1"]
    eth = await store.orders(OrderQuery(symbol="ETHUSDT"))
    assert [o.client_order_id for o in eth] == ["o9", "o6", "o3", "o0"]


async def test_trades_filter_and_page_newest_first(store: HistoryStore):
    rows = []
    for i in range(6):
        order = submitted(f"o{i}", T0 + i, "ETHUSDT" if i % 2 else "BTCUSDT")
        rows.append(FillRow(i + 1, fill(order, f"t{i}", "0.0100", T0 + 10 + i)))
    await store.apply(ProjectionBatch(last_seq=6, fills=rows))
    newest = await store.trades(TradeQuery(limit=2))
    assert [t.trade_id for t in newest] == ["t5", "t4"]
    older = await store.trades(TradeQuery(limit=2, before_ts_ns=newest[-1].ts_ns))
    assert [t.trade_id for t in older] == ["t3", "t2"]
    eth = await store.trades(TradeQuery(symbol="ETHUSDT", limit=10))
    assert [t.trade_id for t in eth] == ["t5", "t3", "t1"]
    one = await store.trades(TradeQuery(client_order_id="o2", limit=10))
    assert [t.trade_id for t in one] == ["t2"]


async def test_audit_records_round_trip_and_filter(store: HistoryStore):
    await store.record_audits(
        [
            AuditRecord(
                ts_ns=T0 + i,
                actor="ops" if i < 2 else "admin",
                action=action,
                target="engine",
                params={"reason": "drill\x00", "size": Decimal("1.50"), "odd": float("nan")},
                result="ok",
                client_ip="127.0.0.1",
                request_id=f"r{i}",
            )
            for i, action in enumerate(["readonly", "readwrite", "readonly"])
        ]
    )
    await store.record_audits([])  # nothing to write is not an error
    everything = await store.audit_log(AuditQuery())
    assert [r.request_id for r in everything] == ["r2", "r1", "r0"]
    assert everything[0].params == {"reason": "drill\ufffd", "size": "1.50", "odd": None}
    assert [r.request_id for r in await store.audit_log(AuditQuery(actor="ops"))] == ["r1", "r0"]
    readonly = await store.audit_log(AuditQuery(action="readonly", since_ts_ns=T0 + 1))
    assert [r.request_id for r in readonly] == ["r2"]
    assert [r.request_id for r in await store.audit_log(AuditQuery(limit=1))] == ["r2"]


async def test_snapshots_are_kept_and_reset_keeps_them(store: HistoryStore):
    snapshot = PortfolioSnapshot(
        ts_ns=T0,
        equity=Decimal("100000.123456"),
        drawdown=Decimal("0.0125"),
        positions=[
            PositionSnapshot(
                symbol="BTCUSDT",
                qty=Decimal("0.5"),
                avg_price=Decimal("50000"),
                mark_price=None,
                unrealized_pnl=Decimal(0),
                realized_pnl=Decimal("-1.5"),
                fees=Decimal("0.001"),
            )
        ],
        balances=[BalanceSnapshot(asset="USDT", free=Decimal("75000"), locked=Decimal("1000"))],
    )
    await store.record_snapshot(snapshot)
    await store.record_snapshot(snapshot)  # the same moment twice is one sample
    await store.record_audits([AuditRecord(ts_ns=T0, actor="ops", action="x")])
    await store.apply(ProjectionBatch(last_seq=3, orders=[OrderRow.of(submitted("a", T0), 1)]))
    await store.reset_projection()
    counts = await store.table_counts()
    assert counts == {
        "orders": 0,
        "fills": 0,
        "mode_changes": 0,
        "positions": 1,
        "balances": 1,
        "equity": 1,
        "audit_log": 1,
    }
    assert await store.high_water() == 0


async def test_an_unreachable_store_says_so_without_its_password(tmp_path: Path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    for store in (
        SqliteStore(str(blocked / "veloz.db"), time.time_ns),
        PostgresStore("postgresql://veloz:s3cret@127.0.0.1:1/veloz", time.time_ns),
    ):
        with pytest.raises(StoreUnavailable) as raised:
            await store.connect()
            await store.high_water()
        assert "s3cret" not in str(raised.value)
        assert "s3cret" not in store.name
        await store.close()
