"""Order routes over HTTP (in process): JSON and form bodies, durability before the answer,
idempotency, and every kind of bad input answered 4xx with nothing changed."""

import errno
import json
import os
from typing import Any

import pytest

from tests.support.asgi import http_scope
from tests.support.engine import wait_for_status
from veloz.engine.views.orders import OrderAnswer
from veloz.journal.framing import EntryType
from veloz.journal.verify import iterate_records
from veloz.model.enums import OrderStatus

ORDER = {"side": "BUY", "symbol": "BTCUSDT", "qty": 0.01, "price": 40000, "client_order_id": "a1"}


async def place(api, body: dict[str, Any] | None = None, **kwargs: Any):
    if body is not None:
        kwargs["json"] = body
    return await api.post("/api/order", **kwargs)


async def test_json_order_is_answered_once_durable(api, engine, wal_dir):
    response = await place(api, ORDER)
    assert response.status_code == 200
    answer = response.json()
    assert answer["ok"] is True
    assert (answer["client_order_id"], answer["status"], answer["venue_order_id"]) == (
        "a1",
        "PENDING_NEW",
        None,
    )
    # The answer is the order as it stands once durable: every field an order has.
    assert set(answer) == set(OrderAnswer.__struct_encode_fields__) and answer["order_qty"] == 0.01
    journaled = [r for _, r in iterate_records(wal_dir) if r.entry_type == EntryType.OrderNew]
    assert len(journaled) == 1 and b"a1" in journaled[0].payload


async def test_form_order_with_string_numbers(api, engine):
    response = await api.post(
        "/api/order",
        content="side=BUY&symbol=ethusdt&qty=0.5&price=3000.5&client_order_id=f-1",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    order = engine.oms.get("f-1")
    assert order is not None and str(order.order_qty) == "0.5" and order.symbol == "ETHUSDT"


async def test_same_id_same_params_answers_the_same_and_sends_nothing(api, engine):
    first = await place(api, ORDER)
    again = await place(api, ORDER)
    assert again.status_code == 200 and again.json()["client_order_id"] == "a1"
    assert len(engine.oms) == 1
    conflict = await place(api, ORDER | {"qty": 0.02})
    assert conflict.status_code == 409 and conflict.json()["error"] == "duplicate_client_order_id"
    assert first.json()["client_order_id"] == "a1"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "bad_json"),
        (b"[1, 2]", "bad_json"),
        (b"", "bad_json"),
        (b'{"side": "BUY", "symbol": "BTCUSDT", "qty": "x", "price": 1}', "bad_params"),
        (b'{"side": "BUY", "symbol": "BTCUSDT", "qty": 0, "price": 1}', "bad_params"),
        (b'{"side": "BUY", "symbol": "BTCUSDT", "qty": 1e40, "price": 1}', "bad_params"),
        (b'{"side": "LONG", "symbol": "BTCUSDT", "qty": 1, "price": 1}', "bad_params"),
        (b'{"side": "BUY", "symbol": "BTCUSDT", "qty": 1}', "bad_params"),
        (b'{"side": "BUY", "symbol": "NOPEUSDT", "qty": 1, "price": 1}', "unknown_symbol"),
        (b'{"side": "BUY", "symbol": 7, "qty": 1, "price": 1}', "bad_params"),
        (b'{"side": "BUY", "symbol": "BTCUSDT", "qty": 1, "price": 1, "x": 1}', "bad_params"),
        (
            b'{"side": "BUY", "symbol": "BTCUSDT", "qty": 1, "price": 1, '
            b'"client_order_id": "no spaces"}',
            "bad_params",
        ),
    ],
)
async def test_bad_input_is_400_and_changes_nothing(api, engine, wal_dir, body, code):
    before = list(iterate_records(wal_dir))
    response = await api.post(
        "/api/order", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == code and response.json()["message"]
    assert list(iterate_records(wal_dir)) == before and len(engine.oms) == 0


async def test_oversize_body_is_413(api, engine):
    response = await place(api, ORDER | {"strategy_id": "x" * 10_000})
    assert response.status_code == 413 and response.json()["error"] == "body_too_large"
    assert len(engine.oms) == 0


async def _chunks(body: bytes, size: int) -> Any:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def test_a_body_in_several_messages_is_read_whole(api, engine):
    body = json.dumps(ORDER).encode()
    response = await api.post(
        "/api/order", content=_chunks(body, 7), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert engine.oms.get("a1") is not None


async def test_a_body_over_the_limit_in_several_messages_is_413(api, engine):
    body = json.dumps(ORDER | {"strategy_id": "x" * 10_000}).encode()
    response = await api.post(
        "/api/order", content=_chunks(body, 1_000), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and response.json()["error"] == "body_too_large"
    assert len(engine.oms) == 0


def _order_scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return http_scope("POST", "/api/order", (b"content-type", b"application/json"), *headers)


async def test_a_client_gone_before_its_body_is_not_answered(api, engine):
    sent: list[Any] = []

    async def gone() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    await api.app(_order_scope(), gone, send)
    assert sent == [] and len(engine.oms) == 0


async def test_an_announced_body_over_the_limit_is_413_before_it_is_read(api, engine):
    sent: list[Any] = []

    async def never_read() -> dict[str, Any]:
        raise AssertionError("the body was read")

    async def send(message: Any) -> None:
        sent.append(message)

    await api.app(_order_scope((b"content-length", b"100000")), never_read, send)
    assert sent[0]["status"] == 413 and b"body_too_large" in sent[1]["body"]
    assert len(engine.oms) == 0


async def test_trading_modes_answer_423_and_cancels_still_work(api, engine):
    await place(api, ORDER)
    await wait_for_status(engine, "a1", OrderStatus.ACCEPTED)
    for action in ("readonly", "maintenance"):
        assert (await api.post(f"/api/admin/{action}")).status_code == 200
        denied = await place(api, ORDER | {"client_order_id": f"x-{action}"})
        assert denied.status_code == 423 and denied.json()["error"] == "trading_disabled"
    cancelled = await api.post("/api/cancel_all")
    assert cancelled.status_code == 200 and cancelled.json()["client_order_ids"] == ["a1"]


async def test_journal_failure_is_503_and_nothing_is_acknowledged(api, engine, monkeypatch):
    def disk_full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    response = await place(api, ORDER)
    assert response.status_code == 503 and response.json()["error"] == "journal_unavailable"
    assert engine.oms.get("a1") is None


async def test_cancel_answers(api, engine):
    missing = await api.post("/api/cancel", json={"client_order_id": "ghost"})
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    await place(api, ORDER)
    await wait_for_status(engine, "a1", OrderStatus.ACCEPTED)
    wrong_symbol = await api.post(
        "/api/cancel", json={"client_order_id": "a1", "symbol": "ETHUSDT"}
    )
    assert wrong_symbol.status_code == 400
    ok = await api.post("/api/cancel", json={"client_order_id": "a1"})
    assert ok.status_code == 200 and ok.json()["status"] == "PENDING_CANCEL"
    await wait_for_status(engine, "a1", OrderStatus.CANCELLED)
    final = await api.post("/api/cancel", json={"client_order_id": "a1"})
    assert final.status_code == 409 and final.json()["error"] == "order_final"
    bad = await api.post("/api/cancel", json={"client_order_id": 5})
    assert bad.status_code == 400


async def test_order_reads(api, engine):
    await place(api, ORDER)
    await place(api, ORDER | {"client_order_id": "m1", "type": "MARKET", "price": None})
    await wait_for_status(engine, "m1", OrderStatus.FILLED)
    await wait_for_status(engine, "a1", OrderStatus.ACCEPTED)
    await engine.journal.sync()  # events reach the activity log once durable
    state = (await api.get("/api/orders_state")).json()
    assert state["count"] == 2 == len(state["orders"])
    assert [o["client_order_id"] for o in state["orders"]] == ["m1", "a1"]  # newest first
    assert state["orders"][1]["type"] == "LIMIT" and state["orders"][1]["order_qty"] == 0.01
    assert (await api.get("/api/orders_state?status=final")).json()["count"] == 1
    assert (await api.get("/api/orders_state?status=ACCEPTED")).json()["count"] == 1
    assert (await api.get("/api/orders_state?symbol=ETHUSDT")).json()["count"] == 0
    assert (await api.get("/api/orders_state?limit=1")).json()["count"] == 1
    newest = state["orders"][0]["created_ts_ns"]
    assert (await api.get(f"/api/orders_state?before={newest}")).json()["count"] == 1
    for bad in ("status=nope", "limit=0", "limit=x", "before=y"):
        assert (await api.get(f"/api/orders_state?{bad}")).status_code == 400
    one = await api.get("/api/order_state?client_order_id=m1")
    assert one.status_code == 200 and one.json()["status"] == "FILLED"
    assert (await api.get("/api/order_state?client_order_id=zz")).status_code == 404
    assert (await api.get("/api/order_state")).status_code == 400
    events = (await api.get("/api/orders?limit=50")).json()["items"]
    seqs = [item["seq"] for item in events]
    assert seqs == sorted(seqs, reverse=True)
    assert {item["event"] for item in events} >= {"OrderSubmitted", "OrderAccepted", "OrderFilled"}
    trades = (await api.get("/api/trades?limit=20")).json()
    assert trades["count"] == 1 and trades["trades"][0]["client_order_id"] == "m1"
    assert trades["trades"][0]["liquidity"] == "TAKER"
    assert (await api.get("/api/trades?limit=0")).status_code == 400


async def test_risk_denials_answer_422_with_the_reason(api, engine):
    broke = await place(api, ORDER | {"qty": 100, "price": 50000, "client_order_id": "big"})
    assert broke.status_code == 422
    body = broke.json()
    assert (body["error"], body["reason"]) == ("risk_rejected", "insufficient_balance")
    assert "needs 5000000" in body["message"] and engine.oms.get("big") is None
    assert engine.stats.rejections["insufficient_balance"] == 1


async def test_a_fault_in_the_engine_is_answered_500_in_the_apis_shape(
    api, engine, monkeypatch, caplog
):
    """A bug, not a refusal: logged with its traceback, answered `{"error", "message"}`
    with the answer's usual headers, never as if the order were placed."""

    def broken(command: object) -> object:
        raise RuntimeError("a bug in the engine")

    monkeypatch.setattr(engine, "submit", broken)
    response = await place(api, ORDER, headers={"X-Request-ID": "fault-1"})
    assert response.status_code == 500, response.text
    assert response.json() == {"error": "internal_error", "message": "internal error"}
    assert response.headers["x-request-id"] == "fault-1"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "a bug in the engine" in caplog.text
    assert engine.oms.get("a1") is None
