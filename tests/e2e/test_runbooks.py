"""The operators' runbook commands against `veloz engine --port` as a subprocess: each
curl of the post-deployment validation and the operations runbook, with the jq checks
they make, and an order round trip exactly as the runbook places it."""

import json
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.test_service_mode import wait_until_serving
from tests.support.postgres import PG_BIN
from tests.support.processes import free_port, start_veloz, veloz_env
from tests.support.runbook import NOT_REPLAYED, RUNBOOKS, Sandbox, blocks


def call(
    base: str,
    path: str,
    method: str = "GET",
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def service(tmp_path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    process = start_veloz(
        ["engine", "--port", str(port), "--host", "127.0.0.1"], veloz_env(tmp_path / "wal")
    )
    try:
        wait_until_serving(port, process)
        yield f"http://127.0.0.1:{port}", process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)


def test_post_deployment_validation(service):
    base, _ = service
    for probe in ("/health", "/health/ready", "/health/startup"):  # curl -f: 2xx required
        status, _ = call(base, probe)
        assert status == 200, probe
    assert json.loads(call(base, "/api/market")[1])["status"] == "ok"  # jq '.status'
    assert json.loads(call(base, "/api/orders_state")[1])["count"] == 0  # jq '.count'
    metrics = call(base, "/metrics")[1].decode()
    assert any(line.startswith("veloz_") for line in metrics.splitlines())  # grep veloz_
    status, answer = call(
        base,
        "/api/order",
        "POST",
        {"side": "BUY", "symbol": "BTCUSDT", "qty": 0.0001, "price": 50000.0},
        {"Content-Type": "application/json", "Authorization": "Bearer test-token"},
    )
    assert status == 200, answer
    placed = json.loads(answer)
    assert placed["ok"] is True and placed["status"] == "PENDING_NEW"
    orders = json.loads(call(base, "/api/orders_state")[1])["orders"]
    assert len(orders) == 1  # jq '.orders | length'
    assert orders[0]["client_order_id"] == placed["client_order_id"]


def test_operations_runbook(service):
    base, process = service
    for path in ("/health", "/health/ready", "/metrics", "/api/orders_state", "/api/config"):
        assert call(base, path)[0] == 200, path
    metrics = call(base, "/metrics")[1].decode()
    for prefix in (
        "veloz_orders",
        "veloz_position",
        "veloz_wal_",
        "veloz_trading_mode",
        "veloz_risk",
    ):
        # `veloz_position` appears once there is a position; the family is always declared.
        assert f"# HELP {prefix}" in metrics or f"\n{prefix}" in metrics, prefix
    maintenance = json.loads(call(base, "/api/admin/maintenance", "POST")[1])
    assert maintenance["mode"] == "MAINTENANCE"
    assert call(base, "/health/ready")[0] == 503
    refused = call(
        base,
        "/api/order",
        "POST",
        {"side": "BUY", "symbol": "BTCUSDT", "qty": 0.001, "price": 40000},
        {"Content-Type": "application/json"},
    )
    assert refused[0] == 423
    assert json.loads(call(base, "/api/admin/ready", "POST")[1])["mode"] == "ACTIVE"
    assert json.loads(call(base, "/api/admin/readonly", "POST")[1])["mode"] == "READONLY"
    assert json.loads(call(base, "/api/admin/readwrite", "POST")[1])["mode"] == "ACTIVE"
    level = call(
        base,
        "/api/admin/log-level",
        "POST",
        {"level": "debug"},
        {"Content-Type": "application/json"},
    )
    assert level[0] == 200 and json.loads(level[1])["level"] == "debug"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_body_limit_is_configurable(tmp_path):
    port = free_port()
    process = start_veloz(
        ["engine", "--port", str(port), "--host", "127.0.0.1"],
        veloz_env(tmp_path / "wal", VELOZ_MAX_BODY_BYTES="2048"),
    )
    try:
        wait_until_serving(port, process)
        base = f"http://127.0.0.1:{port}"
        body = {
            "side": "BUY",
            "symbol": "BTCUSDT",
            "qty": 0.001,
            "price": 40000,
            "strategy_id": "s" * 60,
            "padding": "x" * 3000,
        }
        status, answer = call(
            base, "/api/order", "POST", body, {"Content-Type": "application/json"}
        )
        assert status == 413 and json.loads(answer)["error"] == "body_too_large"
        assert json.loads(call(base, "/api/orders_state")[1])["count"] == 0
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


# The rewritten runbooks (docs/operations/runbooks/), replayed block by block on a sandbox
# host: tests/support/runbook.py says what stands for what.

RUNBOOK_PAGES = sorted(page for page in RUNBOOKS.glob("*.md") if page.name != "README.md")
# A placeholder for the sandbox only, random enough for the release preset's check.
SANDBOX_JWT_SECRET = "rb-7Fq2xLw9Kd4Zp8Tn3Vy6Hs1Mc5Jg0Ue"


def test_every_runbook_block_is_replayed_or_says_why():
    assert {page.stem for page in RUNBOOK_PAGES} == {
        "operations",
        "deployment",
        "oncall",
        "deployment-guide",
        "disaster-recovery",
    }
    for page in RUNBOOK_PAGES:
        found = blocks(page)
        for block in found:
            assert block.reason is None or block.reason in NOT_REPLAYED, str(block)
        replayed = [block for block in found if block.reason is None]
        assert len(replayed) >= 5, f"{page.name}: only {len(replayed)} blocks are replayed"


@pytest.mark.parametrize("page", RUNBOOK_PAGES, ids=lambda page: page.stem)
def test_runbook_replays_as_written(page, tmp_path, archiving_cluster, s3_server):
    s3_server.create_bucket("veloz-backups")
    # As docs/operations/postgres-backup.md asks of the role backups run as: CREATEDB (a
    # restore goes into a new database, then takes the name) and REPLICATION (base backups).
    archiving_cluster.psql("ALTER ROLE veloz CREATEDB REPLICATION")
    sandbox = Sandbox(
        tmp_path / "host",
        free_port(),
        settings={
            "VELOZ_PRESET": "release",
            "VELOZ_JWT_SECRET": SANDBOX_JWT_SECRET,
            "VELOZ_DATABASE_URL": archiving_cluster.url,
            "VELOZ_BACKUP_DIR": str(archiving_cluster.backup_dir),
            "VELOZ_S3_BUCKET": "s3://veloz-backups",
            "VELOZ_PGDATA": str(archiving_cluster.data),
            "VELOZ_PG_BIN": str(PG_BIN),
            "VELOZ_SIM_TICK_INTERVAL_MS": "50",
        },
        env={
            "PGHOST": "127.0.0.1",
            "PGPORT": str(archiving_cluster.port),
            "RUNBOOK_REDIS_DB": "15",
            **s3_server.env(),
        },
        backup_dir=archiving_cluster.backup_dir,
    )
    try:
        for block in blocks(page):
            if block.reason is not None:
                continue
            done = sandbox.run(block)
            assert done.returncode == 0, (
                f"{block} failed (exit {done.returncode}):\n{block.code}\n"
                f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}\n"
                f"--- the engine's last lines\n{sandbox.journal_tail()}"
            )
    finally:
        sandbox.stop()
