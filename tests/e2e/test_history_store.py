"""The history store end to end on a PostgreSQL cluster of the test's own, which it stops
and starts: orders keep flowing while the database is down, nothing is lost when it comes
back, and the runbooks' SQL runs as written against what the engine wrote."""

import json
import os
import re
import signal
import subprocess
import urllib.request

import pytest

from tests.e2e.test_runbooks import call
from tests.e2e.test_service_mode import wait_until_serving
from tests.support.postgres import Cluster
from tests.support.processes import eventually, free_port, start_veloz, veloz_env

pytestmark = pytest.mark.slow

# The runbooks' database commands, exactly as the operators wrote them.
RUNBOOK_SQL = [
    "VACUUM ANALYZE;",
    """SELECT relname, pg_size_pretty(pg_total_relation_size(relid))
                  FROM pg_catalog.pg_statio_user_tables
                  ORDER BY pg_total_relation_size(relid) DESC;""",
    "SELECT count(*) FROM pg_stat_activity;",
    "SELECT client_addr, state, sync_state FROM pg_stat_replication;",
    "SELECT * FROM pg_stat_replication;",
    "SELECT * FROM pg_stat_database WHERE datname = 'veloz';",
]
ORDERS_LAST_HOUR = "SELECT count(*) FROM orders WHERE created_at > NOW() - INTERVAL '1 hour';"
ORDERS_ALL = "SELECT count(*) FROM orders;"


def metric(base: str, name: str) -> float:
    text = call(base, "/metrics")[1].decode()
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def place(base: str, coid: str) -> None:
    status, body = call(
        base,
        "/api/order",
        "POST",
        {"side": "BUY", "symbol": "BTCUSDT", "qty": 0.01, "price": 60000, "client_order_id": coid},
        {"Content-Type": "application/json"},
    )
    assert status == 200, body


def runbook_psql(cluster: Cluster, sql: str) -> str:
    """`psql -U veloz -c "<sql>"` as the runbook types it; host and port from the env."""
    env = os.environ | {"PGHOST": "127.0.0.1", "PGPORT": str(cluster.port)}
    done = subprocess.run(
        ["psql", "-U", "veloz", "-c", sql],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_orders_flow_through_a_database_outage_and_all_reach_the_store(
    tmp_path, pg_cluster: Cluster
):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = veloz_env(tmp_path / "wal", VELOZ_DATABASE_URL=pg_cluster.url)
    process = start_veloz(["engine", "--port", str(port), "--host", "127.0.0.1"], env)
    try:
        wait_until_serving(port, process)
        for n in range(20):
            place(base, f"before-{n}")
        eventually(lambda: metric(base, "veloz_store_lag_entries") == 0, 10, "store caught up")

        pg_cluster.stop()
        for n in range(30):
            place(base, f"during-{n}")  # trading does not wait on the database
        eventually(lambda: metric(base, "veloz_store_up") == 0, 10, "store reported down")
        assert metric(base, "veloz_store_lag_entries") > 0
        status, body = call(base, "/health/ready")
        assert status == 200, body  # degraded, not unready
        database = json.loads(body)["components"]["database"]
        assert database["status"] == "degraded" and database["ok"] is True

        def recent_trades() -> tuple[str | None, int]:
            with urllib.request.urlopen(f"{base}/api/trades?limit=100", timeout=10) as answer:
                return answer.headers["X-VeloZ-History"], json.loads(answer.read())["count"]

        # An order is acknowledged once journaled; its fill follows from the venue.
        eventually(lambda: recent_trades()[1] == 50, 10, "every fill applied")
        assert recent_trades() == ("unavailable", 50)  # memory still answers

        pg_cluster.start()
        eventually(lambda: metric(base, "veloz_store_lag_entries") == 0, 40, "caught up again")
        assert metric(base, "veloz_store_up") == 1
        status, body = call(base, "/health/ready")
        assert json.loads(body)["components"]["database"]["status"] == "ok"

        stored = pg_cluster.psql("SELECT client_order_id FROM orders", "veloz", "veloz").split()
        expected = {f"before-{n}" for n in range(20)} | {f"during-{n}" for n in range(30)}
        assert set(stored) == expected
        fills = pg_cluster.psql("SELECT count(*) FROM fills WHERE qty = 0.01", "veloz", "veloz")
        assert fills.strip() == "50"

        for sql in RUNBOOK_SQL:
            runbook_psql(pg_cluster, sql)
        assert re.search(r"^\s+50$", runbook_psql(pg_cluster, ORDERS_LAST_HOUR), re.MULTILINE)
        assert re.search(r"^\s+50$", runbook_psql(pg_cluster, ORDERS_ALL), re.MULTILINE)
        sizes = runbook_psql(pg_cluster, RUNBOOK_SQL[1])
        assert "orders" in sizes and "fills" in sizes
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
