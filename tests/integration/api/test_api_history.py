"""History reads through the API: final orders and fills the engine no longer holds in
memory come from the history store, newest first and paged with `limit`/`before`, and
survive a restart."""

import sqlite3
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import httpx
import msgspec
import pytest

from tests.support.engine import engine_config, journaled, quote, wait_for
from veloz.config import Settings
from veloz.model.commands import SubmitOrder
from veloz.model.enums import OrderSide
from veloz.model.events import OrderFilled
from veloz.persistence.service import HistoryConfig, HistoryService
from veloz.runtime.history import attach_history
from veloz.runtime.live import LiveEngine
from veloz.runtime.service import service_app

ORDERS = 12


class Running:
    def __init__(self, engine: LiveEngine, history: HistoryService, api: httpx.AsyncClient) -> None:
        self.engine, self.history, self.api = engine, history, api


async def run(tmp_path: Path) -> AsyncIterator[Running]:
    # Memory keeps 3 final orders and 3 fills: everything older must come from the store.
    config = msgspec.structs.replace(
        engine_config(tmp_path / "wal"), retained_final_orders=3, activity_fills=3
    )
    engine = LiveEngine(config)
    history = attach_history(HistoryConfig(url=f"sqlite:///{tmp_path / 'h.db'}"), engine)
    await history.start()
    await engine.start()
    engine.market.on_data(quote())
    app = service_app(engine, Settings(market_symbol="BTCUSDT,ETHUSDT"), history)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://veloz.test") as api:
        yield Running(engine, history, api)
    await engine.stop()
    await history.stop()


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async for it in run(tmp_path):
        yield it


async def fill_orders(running: Running) -> None:
    engine = running.engine
    durable = journaled(engine)
    for n in range(ORDERS):
        await engine.submit(
            SubmitOrder(
                symbol="BTCUSDT",
                side=OrderSide.BUY,
                qty=Decimal("0.01"),
                price=Decimal("50010"),
                client_order_id=f"h{n:02d}",
            )
        )
    # Every fill durable, not only applied: the projector stores what the journal holds,
    # and a fill applied but not yet synced is in neither the store nor the recent fills.
    await wait_for(lambda: sum(isinstance(m.event, OrderFilled) for m in durable) == ORDERS, engine)
    projector = running.history.projector
    assert projector is not None  # inline: the HistoryConfig default
    assert await projector.catch_up()


async def test_final_orders_and_fills_beyond_memory_come_from_the_store(running: Running):
    await fill_orders(running)
    assert len(running.engine.oms) < ORDERS  # memory let the oldest go
    answer = (await running.api.get("/api/orders_state", params={"status": "final"})).json()
    assert [o["client_order_id"] for o in answer["orders"]] == [
        f"h{n:02d}" for n in reversed(range(ORDERS))
    ]
    assert answer["orders"][0]["executed_qty"] == 0.01  # exact numbers, as everywhere
    trades = (await running.api.get("/api/trades", params={"limit": 100})).json()
    assert trades["count"] == ORDERS
    assert {t["client_order_id"] for t in trades["trades"]} == {f"h{n:02d}" for n in range(ORDERS)}


async def test_paging_walks_back_without_gaps_or_repeats(running: Running):
    await fill_orders(running)
    seen: list[str] = []
    before = None
    while True:
        params = {"limit": 5} | ({"before": before} if before else {})
        page = (await running.api.get("/api/orders_state", params=params)).json()["orders"]
        if not page:
            break
        seen += [o["client_order_id"] for o in page]
        before = page[-1]["created_ts_ns"]
    assert seen == [f"h{n:02d}" for n in reversed(range(ORDERS))]
    trades: list[str] = []
    before = None
    while True:
        params = {"limit": 4} | ({"before": before} if before else {})
        page = (await running.api.get("/api/trades", params=params)).json()["trades"]
        if not page:
            break
        trades += [t["trade_id"] for t in page]
        before = page[-1]["ts_ns"]
    assert len(trades) == len(set(trades)) == ORDERS


async def test_history_survives_a_restart(tmp_path: Path):
    async for first in run(tmp_path):
        await fill_orders(first)
    async for second in run(tmp_path):
        answer = (await second.api.get("/api/orders_state")).json()
        assert answer["count"] == ORDERS
        trades = (await second.api.get("/api/trades", params={"limit": 100})).json()
        assert trades["count"] == ORDERS


async def test_a_portfolio_sample_stores_positions_balances_and_equity(
    running: Running, tmp_path: Path
):
    await fill_orders(running)
    await running.history.record_snapshot()
    counts = await running.history.store.table_counts()
    assert (counts["equity"], counts["positions"]) == (1, 1)
    assert counts["balances"] == len(running.engine.portfolio.balances())
    with sqlite3.connect(tmp_path / "h.db") as conn:
        (equity,) = conn.execute("SELECT equity FROM equity").fetchone()
        (qty,) = conn.execute("SELECT qty FROM positions WHERE symbol = 'BTCUSDT'").fetchone()
    assert Decimal(equity) == running.engine.portfolio.equity()
    assert Decimal(qty) == running.engine.portfolio.position_qty("BTCUSDT")
