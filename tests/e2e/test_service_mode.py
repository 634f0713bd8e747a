"""`veloz engine --port` as a subprocess: the runbooks' health and order-state curls, and a
clean exit on SIGTERM."""

import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.support.processes import free_port, start_veloz, veloz_env


def get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_until_serving(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        try:
            if get(port, "/health")[1].get("phase") == "ready":
                return
        except OSError:
            pass
        time.sleep(0.05)
    pytest.fail("the engine did not become ready")


@pytest.fixture
def seeded_wal(tmp_path):
    wal_dir = tmp_path / "wal"
    orders = "".join(f"ORDER BUY BTCUSDT 0.01 {40000 + i} svc-{i}\n" for i in range(7))
    stdio = start_veloz(["engine", "--stdio"], veloz_env(wal_dir))
    stdio.communicate(orders.encode(), timeout=60)
    assert stdio.returncode == 0
    return wal_dir


def test_runbook_curls_and_sigterm(seeded_wal):
    port = free_port()
    process = start_veloz(
        ["engine", "--port", str(port), "--host", "127.0.0.1"], veloz_env(seeded_wal)
    )
    try:
        wait_until_serving(port, process)
        status, health = get(port, "/health")
        assert status == 200 and health["ok"] is True and health["status"] == "ok"
        assert health["uptime_s"] >= 0 and health["version"]
        status, state = get(port, "/api/orders_state")
        assert status == 200 and state["count"] == 7 == len(state["orders"])
        assert {o["client_order_id"] for o in state["orders"]} == {f"svc-{i}" for i in range(7)}
        assert state["orders"][0]["type"] == "LIMIT"
        status, filtered = get(port, "/api/orders_state?status=final")
        assert status == 200 and filtered["count"] == 0
        status, error = get(port, "/api/orders_state?status=nonsense")
        assert status == 400 and error["error"] == "bad_params"
        status, error = get(port, "/api/orders_state?limit=0")
        assert status == 400 and error["error"] == "bad_params"
        status, error = get(port, "/no/such/route")
        assert status == 404 and error["error"] == "not_found"
        second = start_veloz(["engine", "--stdio"], veloz_env(seeded_wal))
        _, err = second.communicate(b"", timeout=30)
        assert second.returncode == 3 and b"in use by another process" in err
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
    finally:
        if process.poll() is None:
            process.kill()


def test_a_busy_port_is_one_line_naming_veloz_port_and_exit_75(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = start_veloz(
            ["engine", "--port", str(port), "--host", "127.0.0.1"],
            veloz_env(tmp_path / "wal"),
            stdin=subprocess.DEVNULL,
        )
        _, stderr = process.communicate(timeout=60)
    text = stderr.decode()
    assert process.returncode == 75, text
    refusals = [line for line in text.splitlines() if line.startswith("veloz: ")]
    assert len(refusals) == 1 and f"VELOZ_PORT {port}" in refusals[0], text
    assert "Traceback" not in text and "never retrieved" not in text
