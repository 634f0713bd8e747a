"""Health, market, account, config, admin and the OpenAPI document (in process)."""

import logging
from decimal import Decimal

from tests.support.engine import quote, wait_for_status
from veloz.model.enums import OrderStatus


async def test_health_probes(api, engine):
    health = (await api.get("/health")).json()
    assert health["ok"] is True and health["status"] == "ok" and health["version"]
    assert (await api.get("/health/live")).status_code == 200
    assert (await api.get("/health/startup")).json()["status"] == "ready"
    ready = await api.get("/health/ready")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert set(body["components"]) == {"journal", "market", "venue", "database", "auth", "cache"}
    assert body["mode"] == "ACTIVE"
    await api.post("/api/admin/maintenance")
    in_maintenance = await api.get("/health/ready")
    assert in_maintenance.status_code == 503 and in_maintenance.json()["mode"] == "MAINTENANCE"
    await api.post("/api/admin/ready")
    assert (await api.get("/health/ready")).status_code == 200


async def test_ready_is_503_when_market_data_is_stale(api, engine):
    engine.market.on_data(
        quote(symbol="BTCUSDT").__class__(
            symbol="BTCUSDT",
            bid=quote().bid,
            ask=quote().ask,
            bid_size=quote().bid_size,
            ask_size=quote().ask_size,
            ts_ns=engine.clock.time_ns() - 60_000_000_000,
        )
    )
    ready = await api.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["components"]["market"]["status"] == "stale"
    assert (await api.get("/api/market")).json()["status"] == "stale"


async def test_market_routes(api, engine):
    engine.market.on_data(quote(bid="50000", ask="50002"))
    market = (await api.get("/api/market")).json()
    assert market["symbol"] == "BTCUSDT" and market["source"] == "sim"
    assert market["price"] == 50001 and market["bid"] == 50000 and market["ask"] == 50002
    assert (await api.get("/api/market?symbol=ethusdt")).json()["symbol"] == "ETHUSDT"
    unknown = await api.get("/api/market?symbol=DOGEUSDT")
    assert unknown.status_code == 404 and "no market DOGEUSDT" in unknown.json()["message"]
    assert (await api.get("/api/market/DOGEUSDT/book")).status_code == 404
    book = (await api.get("/api/market/BTCUSDT/book")).json()
    assert book["bids"] == [[50000, 5]] and book["asks"] == [[50002, 5]]
    assert book["depth"] == 20
    assert (await api.get("/api/market/BTCUSDT/book?depth=0")).status_code == 400
    assert (await api.get("/api/market/BTCUSDT/book?depth=1001")).status_code == 400
    # The schema says what the route answers: levels are [price, qty] arrays.
    schema = (await api.get("/schema/openapi.json")).json()["components"]["schemas"]
    level = schema["Book"]["properties"]["bids"]["items"]
    assert level.get("type") == "array" and "properties" not in level, level
    assert (await api.get("/api/market/BTCUSDT/bars?interval=1m&limit=10")).status_code == 200
    assert (await api.get("/api/market/BTCUSDT/bars?interval=5m")).status_code == 400
    assert (await api.get("/api/market/BTCUSDT/bars?limit=0")).status_code == 400


async def test_account_positions_and_ping(api, engine):
    await api.post(
        "/api/order",
        json={
            "side": "BUY",
            "symbol": "BTCUSDT",
            "qty": 0.5,
            "type": "MARKET",
            "client_order_id": "p1",
        },
    )
    await wait_for_status(engine, "p1", OrderStatus.FILLED)
    balances = {b["asset"]: b for b in (await api.get("/api/account")).json()["balances"]}
    assert balances["USDT"]["free"] < 100000 and balances["BTC"]["free"] > 0
    positions = (await api.get("/api/positions")).json()
    assert positions["count"] == 1 and positions["positions"][0]["symbol"] == "BTCUSDT"
    assert 0 < positions["leverage"] < 1 and positions["equity"] > 99000
    ping = (await api.get("/api/execution/ping")).json()
    assert ping["ok"] is True and ping["venue"] == "sim"


async def test_config_masks_secrets(api):
    response = await api.get("/api/config")
    assert response.status_code == 200
    assert response.json()["binance_api_secret"] == "***"
    assert response.json()["binance_api_key"] is None
    assert "s3cr3t-value" not in response.text


async def test_admin_modes_are_idempotent_and_never_clear_the_wrong_mode(api, engine):
    assert (await api.post("/api/admin/readonly")).json() == {
        "ok": True,
        "mode": "READONLY",
        "changed": True,
    }
    not_in_maintenance = (await api.post("/api/admin/ready")).json()
    assert not_in_maintenance == {"ok": True, "mode": "READONLY", "changed": False}
    assert (await api.post("/api/admin/readwrite")).json()["mode"] == "ACTIVE"
    assert (await api.post("/api/admin/readwrite")).json()["changed"] is False
    logging.getLogger().setLevel(logging.INFO)
    level = await api.post("/api/admin/log-level", json={"level": "warn"})
    assert level.status_code == 200 and level.json()["level"] == "warn"
    assert level.json()["applied_to"] == ["engine"]
    assert logging.getLogger().level == logging.WARNING
    assert (await api.post("/api/admin/log-level", json={"level": "loud"})).status_code == 400
    assert (await api.post("/api/admin/log-level", json={})).status_code == 400
    first = (await api.post("/api/admin/checkpoint")).json()["seq"]
    assert (await api.post("/api/admin/checkpoint")).json()["seq"] > first
    assert engine.journal_stats.checkpoints >= 2


async def test_unknown_routes_and_methods_are_json_errors(api):
    missing = await api.get("/api/nothing")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = await api.get("/api/order")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"


async def test_static_ui_is_served(api):
    page = await api.get("/")
    assert page.status_code == 200 and "VeloZ" in page.text


async def test_openapi_documents_every_route_with_its_errors(api):
    document = (await api.get("/schema/openapi.json")).json()
    paths = document["paths"]
    app = api.app
    for route in app.routes:
        if route.path.startswith(("/schema", "/ws/", "/metrics")) or route.path in (
            "/",
            "/{file_path:path}",
        ):
            continue  # WebSockets, Prometheus text and static files are not JSON operations
        documented = route.path.replace(":str", "").replace("{symbol}", "{symbol}")
        assert documented in paths, f"{route.path} is not in the OpenAPI document"
        for method in route.methods - {"HEAD", "OPTIONS"}:
            operation = paths[documented][method.lower()]
            if not route.path.startswith("/ws/"):
                assert "400" in operation["responses"] or route.path.startswith("/health"), (
                    route.path,
                    method,
                )
    order_body = paths["/api/order"]["post"]["requestBody"]["content"]
    assert set(order_body) == {"application/json", "application/x-www-form-urlencoded"}
    positions = document["components"]["schemas"]["Positions"]["properties"]
    assert positions["equity"] == {"type": "number"}  # decimals are JSON numbers


async def test_the_streams_documented_400_is_the_body_it_sends(api):
    document = (await api.get("/schema/openapi.json")).json()
    refused = document["paths"]["/api/stream"]["get"]["responses"]["400"]
    schema = refused["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ErrorBody"}
    required = set(document["components"]["schemas"]["ErrorBody"]["required"])
    answer = await api.get("/api/stream?types=nonsense")
    assert answer.status_code == 400
    assert required <= set(answer.json()) and answer.json()["error"] == "bad_params"


async def test_equity_history_is_the_risk_samples_with_their_drawdown(api, engine):
    empty = (await api.get("/api/equity")).json()
    assert empty["interval_s"] == 60 and empty["count"] == len(empty["points"])
    minute = 60_000_000_000
    start = engine.clock.time_ns() + minute
    # Samples a minute apart; one 10 s after the last is not kept (the sample interval).
    # Far above the samples the engine took so far, so they set the peaks here.
    steps = ((0, "1000000000"), (1, "1200000000"), (2, "900000000"), (3, "1500000000"), (3.2, "1"))
    for offset, equity in steps:
        engine.risk.record_equity(start + int(offset * minute), Decimal(equity))
    answer = (await api.get("/api/equity")).json()
    points = answer["points"][-4:]
    assert answer["count"] == len(answer["points"])
    assert [p["ts_ns"] for p in points] == [start + n * minute for n in range(4)]
    assert [p["equity"] for p in points] == [1e9, 1.2e9, 0.9e9, 1.5e9]
    # From the highest equity sampled up to each point: 1.2e9 before 0.9e9, then a new high.
    assert [p["drawdown"] for p in points] == [0, 0, 0.25, 0]
