"""The gateway's state view, with the engine played by an HTTP mock: open orders from a
snapshot then the stream, taken again after a gap; engine reads kept until an event and
fetched once for simultaneous callers; the engine's errors answered as its own; a log level
set on the engine before the gateway takes it."""

import asyncio
import json
import logging
from typing import Any

import httpx
import msgspec
import pytest

from tests.unit.model.order_builders import accepted, cancelled, submitted
from veloz.engine.bus import Journaled
from veloz.engine.views.orders import OrderView
from veloz.model.enums import OPEN_STATUSES
from veloz.model.errors import CommandRejected, ErrorCode
from veloz.model.orders import Order
from veloz.model.queries import OrderQuery, TradeQuery
from veloz.persistence.redis_events import RedisConfig
from veloz.runtime.gateway.client import GatewayClient, GatewayConfig
from veloz.runtime.gateway.link import EngineLink


class Engine:
    """Answers the routes a gateway reads, counting the calls."""

    def __init__(self) -> None:
        self.open: list[Order] = []
        self.calls: list[str] = []
        self.positions_wait: asyncio.Event | None = None
        self.log_levels: list[Any] = []
        self.refuse_commands = False
        self.answers_before_applied_to = False  # an engine of the version before

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls.append(path)
        if path == "/api/orders_state":
            views = [msgspec.to_builtins(OrderView.of(o)) for o in self.open]
            return httpx.Response(200, json={"count": len(views), "orders": views})
        if path == "/api/positions":
            if self.positions_wait is not None:
                await self.positions_wait.wait()
            return httpx.Response(
                200,
                json={"count": 0, "positions": [], "equity": 100, "drawdown": 0, "leverage": 0},
            )
        if path == "/api/trades":
            # The engine's history store did not answer: it says so in a header.
            headers = {"X-VeloZ-History": "unavailable"}
            return httpx.Response(200, json={"count": 0, "trades": []}, headers=headers)
        if path == "/api/admin/log-level":
            if self.refuse_commands:
                return httpx.Response(403, json={"error": "forbidden", "message": "admin only"})
            level = json.loads(request.content)["level"]
            self.log_levels.append(level)
            answer = {"ok": True, "mode": "ACTIVE", "level": level}
            if not self.answers_before_applied_to:
                answer["applied_to"] = ["engine"]
            return httpx.Response(200, json=answer)
        if path == "/api/risk/status":
            return httpx.Response(503, json={"error": "store_unavailable", "message": "db down"})
        return httpx.Response(404, json={"error": "not_found", "message": path})


def order(coid: str, *events: Any) -> Order:
    made = Order.from_submitted(submitted(coid))
    for event in events:
        made.apply(event)
    return made


@pytest.fixture
def engine() -> Engine:
    return Engine()


@pytest.fixture
async def gateway(engine: Engine):
    link = EngineLink("http://engine.test", transport=httpx.MockTransport(engine.handle))
    client = GatewayClient(GatewayConfig(), link, RedisConfig(url="redis://127.0.0.1:1/0"))
    yield client
    await link.close()


def open_ids(found: Any) -> set[str]:
    return {o.client_order_id for o in found.answer.orders}


async def test_open_orders_from_the_snapshot_then_the_stream_then_again_after_a_gap(
    gateway: GatewayClient, engine: Engine
):
    a = order("a", accepted("a"))
    b = order("b", accepted("b"))
    engine.open = [a, b]
    await gateway.take_snapshot()
    query = OrderQuery(statuses=frozenset(OPEN_STATUSES))
    assert open_ids(await gateway.order_history(query)) == {"a", "b"}

    # The stream: a is cancelled; c is new. Answered here, without asking the engine.
    calls = len(engine.calls)
    gone = order("a", accepted("a"), cancelled("a", ts_ns=5))
    gateway.on_journaled(Journaled(10, cancelled("a", ts_ns=5), gone))
    c = order("c")
    gateway.on_journaled(Journaled(11, submitted("c"), c))
    assert open_ids(await gateway.order_history(query)) == {"b", "c"}
    assert (await gateway.order("a")).status == "CANCELLED"
    assert len(engine.calls) == calls
    assert [m.seq for m in gateway.events_since(9).messages] == [10, 11]

    # A gap: what happened to b and c meanwhile is unknown here; the engine says only d
    # is open now, and a resume from before the gap is told to re-fetch.
    gateway.on_gap(20)
    assert gateway.snapshot_wanted.is_set()
    assert gateway.events_since(11).complete is False
    engine.open = [order("d", accepted("d"))]
    await gateway.take_snapshot()
    assert open_ids(await gateway.order_history(query)) == {"d"}
    assert not gateway.snapshot_wanted.is_set() and gateway.snapshots == 2


async def test_an_engine_read_is_fetched_once_and_kept_until_an_event(
    gateway: GatewayClient, engine: Engine
):
    engine.positions_wait = asyncio.Event()
    readers = [asyncio.create_task(gateway.positions()) for _ in range(20)]
    await asyncio.sleep(0.01)
    engine.positions_wait.set()
    answers = await asyncio.gather(*readers)
    assert {a.equity for a in answers} == {100} and engine.calls.count("/api/positions") == 1
    await gateway.positions()
    assert engine.calls.count("/api/positions") == 1  # kept
    gateway.on_journaled(Journaled(1, submitted("x"), order("x")))
    await gateway.positions()
    assert engine.calls.count("/api/positions") == 2  # an event: asked again


async def test_a_history_read_says_when_the_engines_store_did_not_answer(
    gateway: GatewayClient,
):
    found = await gateway.trade_history(TradeQuery(limit=20))
    assert found.answer.count == 0 and found.complete is False


async def test_the_engines_errors_are_answered_as_its_own(gateway: GatewayClient):
    with pytest.raises(CommandRejected) as refused:
        await gateway.risk_status()
    assert (refused.value.code, refused.value.message) == (ErrorCode.STORE_UNAVAILABLE, "db down")
    with pytest.raises(CommandRejected) as missing:
        await gateway.order("nobody")
    assert missing.value.code is ErrorCode.NOT_FOUND


async def test_an_engine_that_does_not_answer_is_not_ready():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    link = EngineLink("http://engine.test", transport=httpx.MockTransport(refuse))
    client = GatewayClient(GatewayConfig(), link, RedisConfig(url="redis://127.0.0.1:1/0"))
    with pytest.raises(CommandRejected) as refused:
        await client.positions()
    assert refused.value.code is ErrorCode.NOT_READY
    assert "does not answer" in refused.value.message and not link.stats.up
    ready = await client.readiness("BTCUSDT")
    assert not ready.ok and ready.components["engine"].status == "unreachable"
    assert json.loads(msgspec.json.encode(ready))["served_by"] == "gateway"
    await link.close()


@pytest.fixture
def root_level():
    """The root logger's level, as it was before the test."""
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.WARNING)
    yield root
    root.setLevel(before)


async def test_a_log_level_reaches_the_engine_then_the_gateway(
    gateway: GatewayClient, engine: Engine, root_level: logging.Logger
):
    answer = await gateway.set_log_level("debug")
    assert engine.log_levels == ["debug"]
    assert (answer.level, answer.applied_to) == ("debug", ["engine", "gateway"])
    assert root_level.level == logging.DEBUG


async def test_a_log_level_the_engine_refuses_changes_nothing(
    gateway: GatewayClient, engine: Engine, root_level: logging.Logger
):
    engine.refuse_commands = True
    with pytest.raises(CommandRejected) as refused:
        await gateway.set_log_level("debug")
    assert refused.value.code is ErrorCode.FORBIDDEN
    assert root_level.level == logging.WARNING


async def test_an_engine_from_before_applied_to_is_understood(
    gateway: GatewayClient, engine: Engine, root_level: logging.Logger
):
    engine.answers_before_applied_to = True
    answer = await gateway.set_log_level("error")
    assert answer.applied_to == ["engine", "gateway"]
    assert root_level.level == logging.ERROR
