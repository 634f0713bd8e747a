"""StdioSession.handle against a real engine (temporary journal, sim venue, quotes fed by
the test): what each line writes to stdout as NDJSON events."""

import io
import json
from decimal import Decimal
from typing import Any

import pytest

from tests.support.engine import wait_for_status
from veloz.model.enums import OrderStatus
from veloz.runtime.client import LocalEngineClient
from veloz.runtime.live import LiveEngine
from veloz.runtime.stdio import NdjsonOut, StdioSession

D = Decimal


class Stdout:
    """A session writing into memory, and the events it wrote, parsed back."""

    def __init__(self, engine: LiveEngine, subscribe: bool = False) -> None:
        self.buffer = io.BytesIO()
        self.out = NdjsonOut(self.buffer)
        self.session = StdioSession(LocalEngineClient(engine), self.out, engine.clock)
        if subscribe:
            engine.bus.subscribe(self.session.on_bus)
        self._read = 0

    async def send(self, line: str | bytes) -> list[dict[str, Any]]:
        """Handle one line; return the events written since the last call."""
        await self.session.handle(line.encode() if isinstance(line, str) else line)
        return self.events()

    def events(self) -> list[dict[str, Any]]:
        self.out.flush()
        data = self.buffer.getvalue()[self._read :]
        self._read += len(data)
        assert data == b"" or data.endswith(b"\n")
        return [json.loads(line, parse_float=Decimal) for line in data.splitlines()]


@pytest.fixture
def stdout(engine: LiveEngine) -> Stdout:
    return Stdout(engine)


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"HELLO", "bad_command"),
        (b"ORDER BUY", "bad_params"),
        (b"CANCEL", "bad_params"),
        (b'{"cmd": ', "bad_json"),
        (b'{"cmd": "launch"}', "bad_command"),
        (b"{}", "bad_command"),
        (b'{"cmd": "order", "side": "BUY"}', "bad_params"),
        (
            b'{"cmd": "order", "side": "BUY", "symbol": "BTCUSDT", "qty": 1, "price": 1, '
            b'"colour": "red"}',
            "bad_params",
        ),
        (b"ORDER BUY BTCUSDT -1 50000 neg-1", "bad_params"),
        (b"ORDER HOLD BTCUSDT 1 50000 h-1", "bad_params"),
        (b"ORDER BUY BTCUSDT 0.01 50000 " + b"x" * 37, "bad_params"),
        (b"ORDER BUY DOGEUSDT 1 1 d-1", "unknown_symbol"),
        (b"ORDER BUY BTCUSDT 0.000001 50000 grid-1", "bad_params"),
        (b"\xff\xfe\xfd", "bad_command"),
        (b'{"cmd": "query"}', "bad_params"),
        (b"QUERY nobody", "not_found"),
        (b"CANCEL nobody", "not_found"),
    ],
)
async def test_a_malformed_line_yields_exactly_one_error_event(stdout, line, code):
    events = await stdout.send(line)
    assert len(events) == 1
    error = events[0]
    assert error["type"] == "error" and error["code"] == code
    assert isinstance(error["ts_ns"], int) and error["ts_ns"] > 0
    assert error["message"]
    assert error["line"] == line.decode("utf-8", errors="replace").strip()[:200]


async def test_the_session_carries_on_after_errors(stdout):
    for line in ("HELLO", "{", "QUERY nobody"):
        assert [e["type"] for e in await stdout.send(line)] == ["error"]
    assert [e["type"] for e in await stdout.send("STATUS")] == ["account"]


async def test_a_long_line_is_echoed_back_truncated(stdout):
    (error,) = await stdout.send("HELLO " + "x" * 1000)
    assert len(error["line"]) == 200


@pytest.mark.parametrize("line", [b"", b"   ", b"\n", b"\t \r\n"])
async def test_blank_lines_yield_nothing(stdout, line):
    assert await stdout.send(line) == []


async def test_status_yields_one_account_event(stdout, engine):
    (account,) = await stdout.send("STATUS")
    assert account["type"] == "account"
    assert isinstance(account["ts_ns"], int)
    assert account["mode"] == "ACTIVE"
    assert account["open_orders"] == 0 and account["orders"] == 0
    balances = {b["asset"]: b for b in account["balances"]}
    assert balances["USDT"]["free"] == engine.portfolio.balances()[-1].free
    assert balances["USDT"]["locked"] == 0


async def test_json_status_is_case_insensitive(stdout):
    assert [e["type"] for e in await stdout.send('{"cmd": "Status"}')] == ["account"]


async def test_an_order_is_announced_once_durable_then_queried(engine):
    stdout = Stdout(engine, subscribe=True)
    events = await stdout.send("ORDER BUY BTCUSDT 0.01 49000 s-1")
    updates = [e for e in events if e["type"] == "order_update"]
    assert updates and updates[0]["client_order_id"] == "s-1"
    assert updates[0]["status"] == "PENDING_NEW" and updates[0]["event"] == "OrderSubmitted"
    assert updates[0]["order_type"] == "LIMIT" and updates[0]["time_in_force"] == "GTC"
    assert updates[0]["order_qty"] == D("0.01") and updates[0]["limit_price"] == D("49000")
    await wait_for_status(engine, "s-1", OrderStatus.ACCEPTED)
    stdout.events()
    (state,) = await stdout.send("QUERY s-1")
    assert state["type"] == "order_state" and state["status"] == "ACCEPTED"
    assert state["client_order_id"] == "s-1" and state["venue_order_id"]
    assert state["order_type"] == "LIMIT"  # `type` names the event, not the order's type


async def test_resending_the_same_order_answers_with_its_state_and_creates_nothing(engine):
    stdout = Stdout(engine)
    assert await stdout.send("ORDER BUY BTCUSDT 0.01 49000 dup-1") == []  # bus not watched
    await wait_for_status(engine, "dup-1", OrderStatus.ACCEPTED)
    (update,) = await stdout.send("ORDER BUY BTCUSDT 0.01 49000 dup-1")
    assert update["type"] == "order_update" and update["status"] == "ACCEPTED"
    assert len(engine.oms) == 1
    (error,) = await stdout.send("ORDER BUY BTCUSDT 0.02 49000 dup-1")
    assert error["code"] == "duplicate_client_order_id"


async def test_json_order_then_cancel(engine):
    stdout = Stdout(engine)
    line = (
        '{"cmd": "ORDER", "side": "buy", "symbol": "btcusdt", "qty": 0.01, "price": 49000,'
        ' "client_order_id": "j-1"}'
    )
    assert await stdout.send(line) == []
    order = engine.oms.get("j-1")
    assert order is not None and order.order_qty == D("0.01")
    await wait_for_status(engine, "j-1", OrderStatus.ACCEPTED)
    assert await stdout.send('{"cmd": "cancel", "client_order_id": "j-1"}') == []
    await wait_for_status(engine, "j-1", OrderStatus.CANCELLED)
    (error,) = await stdout.send("CANCEL j-1")
    assert error["code"] == "order_final"


async def test_a_huge_quantity_is_bad_params_not_an_internal_error(stdout):
    (error,) = await stdout.send("ORDER BUY BTCUSDT 100000000000000000000000000 50000 big-1")
    assert error["code"] == "bad_params"


async def test_a_risk_denial_names_its_reason(stdout, engine):
    events = await stdout.send("ORDER SELL BTCUSDT 1 50000 short-1")  # no BTC to sell
    assert len(events) == 1
    assert (events[0]["code"], events[0]["reason"]) == ("risk_rejected", "insufficient_balance")
    assert engine.oms.get("short-1") is None
