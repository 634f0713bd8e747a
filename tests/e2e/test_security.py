"""Security end to end: `veloz engine` in the release preset (auth on) as a subprocess with
its secrets in files, the runbook's `Authorization: Bearer` order, streams that need a
token (header or `?token=`), keys and users made with the CLI, and no secret anywhere in
the run's output, answers or logs."""

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.e2e.test_runbooks import call
from tests.e2e.test_service_mode import wait_until_serving
from tests.support.processes import OPEN_RISK_LIMITS, free_port, start_veloz, veloz_env

pytestmark = pytest.mark.slow

JWT_SECRET = "e1b7c3f9a2d84e6b0c5f7a9d3e1b8c4f6a0d2e9b7c5a3f1d"
ADMIN_PASSWORD = "Adm1n-passw0rd-for-the-test"
TRADER_PASSWORD = "Tr4der-passw0rd-for-the-test"


def veloz_cli(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "veloz", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def release_env(tmp_path: Path) -> dict[str, str]:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "jwt").write_text(JWT_SECRET + "\n")
    (secrets / "admin").write_text(ADMIN_PASSWORD + "\n")
    return veloz_env(
        tmp_path / "wal",
        VELOZ_PRESET="release",
        VELOZ_LOG_LEVEL="debug",
        VELOZ_JWT_SECRET_FILE=str(secrets / "jwt"),
        VELOZ_ADMIN_PASSWORD_FILE=str(secrets / "admin"),
        VELOZ_RISK_LIMITS_FILE=str(OPEN_RISK_LIMITS),
        VELOZ_LOGIN_RATE_LIMIT="20",  # two logins in the same second are part of the test
    )


def test_release_refuses_to_start_without_a_strong_jwt_secret(tmp_path):
    env = veloz_env(tmp_path / "wal", VELOZ_PRESET="release")
    missing = veloz_cli("engine", "--port", str(free_port()), env=env)
    assert missing.returncode == 2 and "VELOZ_JWT_SECRET" in missing.stderr
    weak = veloz_cli(
        "engine", "--port", str(free_port()), env=env | {"VELOZ_JWT_SECRET": "changeme" * 5}
    )
    assert weak.returncode == 2 and "changeme" not in weak.stderr


async def test_a_secured_run_end_to_end_shows_no_secret(tmp_path):
    env = release_env(tmp_path)
    made = veloz_cli(
        "users",
        "create",
        "trader1",
        "--role",
        "trader",
        env=env,
        stdin=f"{TRADER_PASSWORD}\n{TRADER_PASSWORD}\n",
    )
    assert made.returncode == 0, made.stderr
    key_run = veloz_cli("keys", "create", "--name", "dashboard", "--role", "viewer", env=env)
    assert key_run.returncode == 0, key_run.stderr
    viewer_key = key_run.stdout.splitlines()[-1]
    assert viewer_key.startswith("vz_")
    listed = veloz_cli("keys", "list", env=env | {"COLUMNS": "200"})
    assert "dashboard" in listed.stdout and viewer_key not in listed.stdout

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_veloz(["engine", "--port", str(port), "--host", "127.0.0.1"], env)
    answers: list[bytes] = []
    try:
        wait_until_serving(port, process)
        assert call(base, "/health")[0] == 200 and call(base, "/metrics")[0] == 200  # public
        assert call(base, "/api/orders_state")[0] == 401

        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            login = await client.post(
                "/api/auth/login", json={"user_id": "trader1", "password": TRADER_PASSWORD}
            )
            assert login.status_code == 200, login.text
            token = login.json()["access_token"]
            # The runbook's order, with its Authorization: Bearer header.
            order = await client.post(
                "/api/order",
                headers={"Authorization": f"Bearer {token}"},
                json={"side": "BUY", "symbol": "BTCUSDT", "qty": 0.0001, "price": 50000.0},
            )
            assert order.status_code == 200, order.text
            denied = await client.post(
                "/api/admin/readonly", headers={"Authorization": f"Bearer {token}"}
            )
            assert denied.status_code == 403
            viewer_order = await client.post(
                "/api/order",
                headers={"X-API-Key": viewer_key},
                json={"side": "BUY", "symbol": "BTCUSDT", "qty": 0.0001, "price": 50000.0},
            )
            assert viewer_order.status_code == 403
            admin = await client.post(
                "/api/auth/login", json={"user_id": "admin", "password": ADMIN_PASSWORD}
            )
            admin_headers = {"Authorization": f"Bearer {admin.json()['access_token']}"}
            config = await client.get("/api/config", headers=admin_headers)
            assert config.status_code == 200
            assert config.json()["jwt_secret"] == "***" and config.json()["admin_password"] == "***"
            # Audit records reach the store write-behind (through the projector's spool).
            wanted = {"user:trader1", f"key:{viewer_key.split('_')[1]}"}
            actors: set[str] = set()
            for _ in range(100):
                audit = await client.get(
                    "/api/audit/logs", headers=admin_headers, params={"action": "POST /api/order"}
                )
                actors = {item["actor"] for item in audit.json()["items"]}
                if wanted <= actors:
                    break
                await asyncio.sleep(0.1)
            assert wanted <= actors

            # SSE: refused without a token, served with ?token= (what EventSource can send).
            assert (await client.get("/api/stream")).status_code == 401
            async with client.stream("GET", "/api/stream", params={"token": viewer_key}) as stream:
                assert stream.status_code == 200
            answers += [login.content, order.content, config.content, audit.content]

        # WebSocket: refused before the upgrade without a token; accepted with one.
        with pytest.raises(InvalidStatus):
            async with connect(f"ws://127.0.0.1:{port}/ws/market"):
                pass
        async with connect(f"ws://127.0.0.1:{port}/ws/market?token={token}") as ws:
            await ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await ws.recv())["type"] == "pong"
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err.decode()[-2000:]
    everything = b"".join(answers) + out + err
    for secret in (JWT_SECRET, ADMIN_PASSWORD, TRADER_PASSWORD, viewer_key):
        assert secret.encode() not in everything, "a secret leaked into the output"
