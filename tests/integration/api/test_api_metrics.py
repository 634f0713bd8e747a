"""`/metrics`: valid Prometheus text whose figures follow the engine."""

from prometheus_client.parser import text_string_to_metric_families

from tests.support.engine import wait_for_status
from veloz.model.enums import OrderStatus


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_follow_the_engine(api, engine):
    before = samples((await api.get("/metrics")).text)
    assert before[("veloz_trading_mode", (("mode", "ACTIVE"),))] == 1
    assert ("veloz_build_info", (("version", "0.1.0"),)) in before
    await api.post(
        "/api/order",
        json={
            "side": "BUY",
            "symbol": "BTCUSDT",
            "qty": 0.1,
            "type": "MARKET",
            "client_order_id": "m1",
        },
    )
    await wait_for_status(engine, "m1", OrderStatus.FILLED)
    await api.post("/api/admin/readonly")
    response = await api.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    after = samples(response.text)
    written = ("veloz_wal_entries_written_total", ())
    assert after[written] > before[written]
    assert after[("veloz_orders_by_status", (("status", "FILLED"),))] == 1
    assert after[("veloz_trading_mode", (("mode", "READONLY"),))] == 1
    assert after[("veloz_position_qty", (("symbol", "BTCUSDT"),))] > 0
    assert after[("veloz_wal_fsync_seconds_count", ())] >= 1
    assert ("veloz_market_data_age_seconds", (("symbol", "BTCUSDT"),)) in after
    assert after[("veloz_equity", ())] > 0
    assert after[("veloz_risk_circuit_breaker_tripped", ())] == 0
    assert after[("veloz_orders_total", (("side", "BUY"), ("type", "MARKET")))] == 1
    assert after[("veloz_fills_total", (("side", "BUY"),))] >= 1
    assert after[("veloz_sse_clients", ())] == 0 and after[("veloz_ws_clients", ())] == 0
    assert after[("veloz_event_loop_pending_tasks", ())] > 0
    assert after[("veloz_process_resident_memory_bytes", ())] > 0
    assert 0 < after[("veloz_risk_leverage_gross", ())] < 1
    assert ("veloz_risk_var_95", ()) in after


async def test_http_requests_and_latencies_are_measured(api, engine):
    await api.get("/api/market/BTCUSDT/book")
    await api.get("/api/market/BTCUSDT/book")
    await api.get("/api/orders_state?limit=0")  # 400
    await api.post(
        "/api/order",
        json={
            "side": "BUY",
            "symbol": "BTCUSDT",
            "qty": 0.01,
            "price": 49000,
            "client_order_id": "lat-1",
        },
    )
    seen = samples((await api.get("/metrics")).text)
    book = (
        "veloz_http_requests_total",
        (("method", "GET"), ("route", "/api/market/{symbol}/book"), ("status", "200")),
    )
    assert seen[book] == 2  # one series per route template, not per symbol
    bad = (
        "veloz_http_requests_total",
        (("method", "GET"), ("route", "/api/orders_state"), ("status", "400")),
    )
    assert seen[bad] == 1
    timed = (
        "veloz_http_request_duration_seconds_count",
        (("method", "POST"), ("route", "/api/order")),
    )
    assert seen[timed] == 1
    assert seen[("veloz_order_latency_seconds_count", ())] == 1
    assert seen[("veloz_latency_seconds_count", (("stage", "risk"),))] == 1
    assert seen[("veloz_latency_seconds_count", (("stage", "journal"),))] >= 1
    await wait_for_status(engine, "lat-1", OrderStatus.ACCEPTED)
    seen = samples((await api.get("/metrics")).text)
    assert seen[("veloz_latency_seconds_count", (("stage", "venue"),))] == 1
