"""Risk over HTTP: the limits in force, the risk status, and reloading the limits file
(a valid file changes the next decision, an invalid one changes nothing)."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.integration.api.conftest import ApiClient
from tests.support.engine import engine_config, quote, wait_for_status
from veloz.config import Settings
from veloz.model.enums import OrderStatus
from veloz.risk.engine import RiskConfig
from veloz.risk.limits import load_limits
from veloz.runtime.live import LiveEngine
from veloz.runtime.service import service_app

LIMITS = "defaults:\n  max_qty: 1\n  price_band_pct: 5\nmax_open_orders: 10\n"
ORDER = {"side": "BUY", "symbol": "BTCUSDT", "price": 50000}


@pytest.fixture
async def risky(tmp_path: Path) -> AsyncIterator[tuple[ApiClient, LiveEngine, Path]]:
    path = tmp_path / "risk_limits.yaml"
    path.write_text(LIMITS)
    risk = RiskConfig(limits=load_limits(path), limits_path=str(path))
    engine = LiveEngine(engine_config(tmp_path / "wal", risk=risk))
    await engine.start()
    engine.market.on_data(quote(bid="50000", ask="50001"))
    app = service_app(engine, Settings())
    async with ApiClient(
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        base_url="http://veloz.test",
    ) as client:
        yield client, engine, path
    await engine.stop()


async def test_limits_and_status_show_what_is_in_force(risky):
    api, _, path = risky
    limits = (await api.get("/api/risk/limits")).json()
    assert limits["source"] == str(path) and len(limits["sha256"]) == 64
    assert (
        limits["limits"]["defaults"]["max_qty"] == 1 and limits["limits"]["max_open_orders"] == 10
    )
    await api.post("/api/order", json=ORDER | {"qty": 2})  # denied: above max_qty
    await api.post("/api/order", json=ORDER | {"qty": 0.5, "price": 49000})
    status = (await api.get("/api/risk/status")).json()
    assert status["mode"] == "ACTIVE" and status["open_orders"] == 1
    assert status["denials"] == {"qty_above_maximum": 1}
    btc = next(s for s in status["symbols"] if s["symbol"] == "BTCUSDT")
    assert btc["open_buy_qty"] == 0.5 and btc["open_orders"] == 1


async def test_a_valid_reload_changes_the_next_decision(risky):
    api, _, path = risky
    assert (await api.post("/api/order", json=ORDER | {"qty": 2})).status_code == 422
    path.write_text(LIMITS.replace("max_qty: 1", "max_qty: 3"))
    reloaded = await api.post("/api/admin/reload-config")
    assert reloaded.status_code == 200 and reloaded.json()["source"] == str(path)
    assert (await api.post("/api/order", json=ORDER | {"qty": 2})).status_code == 200


async def test_an_invalid_file_is_refused_and_the_old_limits_stay(risky):
    api, engine, path = risky
    before = (await api.get("/api/risk/limits")).json()
    path.write_text("defaults:\n  max_qty: -5\n")
    refused = await api.post("/api/admin/reload-config")
    assert refused.status_code == 400 and refused.json()["error"] == "bad_limits"
    assert "line 2" in refused.json()["message"] and "max_qty" in refused.json()["message"]
    assert (await api.get("/api/risk/limits")).json() == before
    assert (await api.post("/api/order", json=ORDER | {"qty": 2})).status_code == 422
    assert engine.risk.loaded.limits.defaults.max_qty == 1


async def test_an_atomic_replace_of_the_file_is_picked_up_by_the_watcher(tmp_path):
    path = tmp_path / "risk_limits.yaml"
    path.write_text(LIMITS)
    risk = RiskConfig(limits=load_limits(path), limits_path=str(path), watch=True)
    engine = LiveEngine(engine_config(tmp_path / "wal", risk=risk))
    await engine.start()
    try:
        first = engine.risk.loaded.sha256
        staged = tmp_path / "risk_limits.yaml.new"
        staged.write_text(LIMITS.replace("max_qty: 1", "max_qty: 7"))
        staged.replace(path)  # what editors and deploy tools do
        # The change arrives from the file system; bounded wait for the reload to land.
        for _ in range(200):
            if engine.risk.loaded.sha256 != first:
                break
            await asyncio.sleep(0.025)
        assert engine.risk.loaded.limits.defaults.max_qty == 7
        path.write_text("defaults:\n  max_qty: [broken\n")  # refused; 7 stays
        await asyncio.sleep(0.5)
        assert engine.risk.loaded.limits.defaults.max_qty == 7
    finally:
        await engine.stop()


async def test_a_configmap_update_is_picked_up_by_the_watcher(tmp_path):
    """The kubelet's layout: risk_limits.yaml -> ..data/risk_limits.yaml, ..data -> a
    timestamped folder; an update writes a new folder and renames a new ..data over the
    old one, and the file's own name never changes."""
    mount = tmp_path / "limits"
    (mount / "..2026_11_29_01").mkdir(parents=True)
    (mount / "..2026_11_29_01" / "risk_limits.yaml").write_text(LIMITS)
    (mount / "..data").symlink_to("..2026_11_29_01")
    path = mount / "risk_limits.yaml"
    path.symlink_to("..data/risk_limits.yaml")
    risk = RiskConfig(limits=load_limits(path), limits_path=str(path), watch=True)
    engine = LiveEngine(engine_config(tmp_path / "wal", risk=risk))
    await engine.start()
    try:
        await asyncio.sleep(0.3)  # the watcher is up
        (mount / "..2026_11_29_02").mkdir()
        (mount / "..2026_11_29_02" / "risk_limits.yaml").write_text(
            LIMITS.replace("max_qty: 1", "max_qty: 9")
        )
        (mount / "..data_tmp").symlink_to("..2026_11_29_02")
        (mount / "..data_tmp").replace(mount / "..data")
        for _ in range(200):
            if engine.risk.loaded.limits.defaults.max_qty == 9:
                break
            await asyncio.sleep(0.025)
        assert engine.risk.loaded.limits.defaults.max_qty == 9
    finally:
        await engine.stop()


async def test_status_reports_var_leverage_and_concentration(tmp_path):
    risk = RiskConfig(equity_sample_interval_s=0)  # every quote is a sample
    engine = LiveEngine(engine_config(tmp_path / "wal", risk=risk))
    await engine.start()
    app = service_app(engine, Settings())
    try:
        engine.market.on_data(quote(bid="50000", ask="50001"))
        async with ApiClient(
            transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
            base_url="http://veloz.test",
        ) as api:
            bought = await api.post(
                "/api/order",
                json={
                    "side": "BUY",
                    "symbol": "BTCUSDT",
                    "qty": 1,
                    "type": "MARKET",
                    "client_order_id": "v1",
                },
            )
            assert bought.status_code == 200
            await wait_for_status(engine, "v1", OrderStatus.FILLED)
            for bid in ("49000", "47000", "48000", "45000", "46000"):
                engine.market.on_data(quote(bid=bid, ask=str(int(bid) + 1)))
            status = (await api.get("/api/risk/status")).json()
        assert status["equity_samples"] >= 6
        assert status["var_95"] > 0 and status["var_99"] >= status["var_95"]
        assert 0 < status["gross_leverage"] < 1 and status["largest_position_share"] == 1
        assert status["concentration_hhi"] == 1 and status["drawdown"] > 0
    finally:
        await engine.stop()
