"""The strategy routes from the outside: add, list, inspect, pause, resume, stop, remove,
the catalogue with parameter schemas, and every bad input refused with nothing added."""

from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.api.conftest import ApiClient
from tests.support.engine import quote, wait_for
from veloz.runtime.live import LiveEngine

BUYER = "tests.support.strategies:QuoteBuyer"


async def add(api: ApiClient, **fields: object) -> dict[str, object]:
    body = {"strategy_id": "buyer", "strategy": BUYER, "symbol": "btcusdt"} | fields
    answer = await api.post("/api/strategies", json=body)
    assert answer.status_code == 201, answer.text
    added: dict[str, object] = answer.json()
    return added


async def test_add_run_and_inspect(api: ApiClient, engine: LiveEngine) -> None:
    added = await add(api, params={"qty": "0.01"})
    assert (added["strategy_id"], added["symbol"], added["state"]) == (
        "buyer",
        "BTCUSDT",
        "running",
    )
    engine.market.on_data(quote())
    await wait_for(lambda: engine.strategies.get("buyer").counts.fills == 1, engine)
    one = (await api.get("/api/strategies/buyer")).json()
    assert Decimal(str(one["position"])) == Decimal("0.00999")
    assert (one["orders"], one["fills"], one["open_orders"]) == (1, 1, 0)
    assert Decimal(str(one["realized_pnl"])) == 0
    listed = (await api.get("/api/strategies")).json()["strategies"]
    assert [s["strategy_id"] for s in listed] == ["buyer"]


async def test_lifecycle_routes(api: ApiClient) -> None:
    await add(api, start=False)
    assert (await api.get("/api/strategies/buyer")).json()["state"] == "added"
    for action, state in (("start", "running"), ("pause", "paused"), ("resume", "running")):
        answer = await api.post(f"/api/strategies/buyer/{action}")
        assert answer.status_code == 200, answer.text
        assert answer.json()["state"] == state
    conflict = await api.post("/api/strategies/buyer/resume")
    assert conflict.status_code == 409
    assert "not paused" in conflict.json()["message"]
    stopped = await api.post("/api/strategies/buyer/stop")
    assert stopped.json()["state"] == "stopped"
    removed = await api.delete("/api/strategies/buyer")
    assert removed.status_code == 200 and removed.json()["state"] == "removed"
    assert (await api.get("/api/strategies/buyer")).status_code == 404


async def test_catalog_serves_the_parameter_schemas(api: ApiClient) -> None:
    kinds = {k["name"]: k for k in (await api.get("/api/strategies/catalog")).json()["strategies"]}
    assert set(kinds) == {
        "ema_cross",
        "grid",
        "rsi_reversion",
        "bollinger_reversion",
        "donchian_breakout",
        "market_making",
        "dca",
    }
    fields = kinds["ema_cross"]["params_schema"]["$defs"]["EmaCrossParams"]["properties"]
    assert fields["fast"]["minimum"] == 1 and fields["slow"]["default"] == 20


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"strategy": "momentum"}, 400, "unknown strategy 'momentum'"),
        ({"strategy": "ema_cross", "params": {"fast": 0}}, 400, "parameter fast"),
        ({"strategy": "ema_cross", "params": {"speed": 1}}, 400, "unknown parameter speed"),
        ({"strategy": "ema_cross", "symbol": "DOGEUSDT"}, 400, "unknown symbol DOGEUSDT"),
        ({"strategy_id": "no spaces allowed"}, 400, "strategy_id must be"),
        ({"params": [1, 2]}, 400, "params must be an object"),
        ({"colour": "red"}, 400, "unknown field(s): colour"),
    ],
)
async def test_bad_strategies_are_refused_and_nothing_is_added(
    api: ApiClient, body: dict[str, object], status: int, message: str
) -> None:
    full = {"strategy_id": "s1", "strategy": BUYER, "symbol": "BTCUSDT"} | body
    answer = await api.post("/api/strategies", json=full)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["message"]
    assert (await api.get("/api/strategies")).json()["strategies"] == []


async def test_the_same_id_twice_is_a_conflict(api: ApiClient) -> None:
    await add(api)
    again = await api.post(
        "/api/strategies", json={"strategy_id": "buyer", "strategy": "grid", "symbol": "BTCUSDT"}
    )
    assert again.status_code == 409
    assert again.json()["error"] == "duplicate_strategy_id"


async def test_metrics_per_strategy(api: ApiClient, engine: LiveEngine) -> None:
    await add(api, params={"qty": "0.01"})
    await add(api, strategy_id="idle", start=False)
    engine.market.on_data(quote())
    await wait_for(lambda: engine.strategies.get("buyer").counts.fills == 1, engine)
    found = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families((await api.get("/metrics")).text)
        for sample in family.samples
    }
    assert found[("veloz_strategy_state", (("state", "running"), ("strategy", "buyer")))] == 1
    assert found[("veloz_strategy_state", (("state", "added"), ("strategy", "idle")))] == 1
    assert found[("veloz_strategy_position", (("strategy", "buyer"),))] == 0.00999
    assert found[("veloz_strategy_orders_total", (("strategy", "buyer"),))] == 1
    assert found[("veloz_strategy_fills_total", (("strategy", "buyer"),))] == 1
    assert found[("veloz_strategy_errors_total", (("strategy", "buyer"),))] == 0
