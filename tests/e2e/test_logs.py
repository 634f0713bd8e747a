"""Logs: JSON lines, and no secret anywhere in a full run's output (stdout, stderr, HTTP
answers), with a known API key and secret set and debug logging on."""

import json
import signal

from tests.e2e.test_runbooks import call
from tests.e2e.test_service_mode import wait_until_serving
from tests.support.processes import free_port, start_veloz, veloz_env

KEY = "k3y-AAAAbbbbCCCCddddEEEE1234"
SECRET = "s3cr3t-ZZZZyyyyXXXXwwwwVVVV9876"


def test_a_full_run_never_shows_a_secret_and_logs_json(tmp_path):
    port = free_port()
    env = veloz_env(
        tmp_path / "wal",
        VELOZ_LOG_LEVEL="debug",
        VELOZ_BINANCE_API_KEY=KEY,
        VELOZ_BINANCE_API_SECRET=SECRET,
    )
    process = start_veloz(["engine", "--port", str(port), "--host", "127.0.0.1"], env)
    answers: list[bytes] = []
    try:
        wait_until_serving(port, process)
        base = f"http://127.0.0.1:{port}"
        json_headers = {"Content-Type": "application/json"}
        for method, path, body in [
            ("GET", "/api/config", None),
            (
                "POST",
                "/api/order",
                {
                    "side": "BUY",
                    "symbol": "BTCUSDT",
                    "qty": 0.01,
                    "price": 49000,
                    "client_order_id": "s1",
                },
            ),
            (
                "POST",
                "/api/order",
                {"side": "BUY", "symbol": "BTCUSDT", "qty": -1, "price": SECRET},
            ),
            ("POST", "/api/admin/log-level", {"level": "debug"}),
            ("POST", "/api/admin/readonly", None),
            ("POST", "/api/admin/readwrite", None),
            ("GET", "/metrics", None),
            ("GET", f"/api/order_state?client_order_id={SECRET[:30]}", None),
        ]:
            answers.append(call(base, path, method, body, json_headers)[1])
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    assert process.returncode == 0
    everything = b"".join(answers) + out + err
    assert KEY.encode() not in everything and SECRET.encode() not in everything
    assert b'"binance_api_secret":"***"' in answers[0]
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines, "service mode logs to stdout"
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"event", "level", "timestamp", "logger"} <= set(r) for r in records)
    assert any(r["logger"] == "veloz.audit" for r in records)
