"""The bootstrap admin logs in at once: `veloz engine` with authentication on, as a fresh
start, on SQLite and on PostgreSQL, several times. A login sent from the moment the port
answers is never refused with 401 (before the credentials are loaded it waits for them,
or is answered 503), and once `/health/ready` is 200, or the phase is `ready`, the login
works: ready means the configured credentials work."""

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.processes import free_port, start_veloz, veloz_env

pytestmark = pytest.mark.slow

JWT_SECRET = "e1b7c3f9a2d84e6b0c5f7a9d3e1b8c4f6a0d2e9b7c5a3f1d"
ADMIN_PASSWORD = "Adm1n-passw0rd-for-the-test"


def post_login(port: int) -> int:
    body = json.dumps({"user_id": "admin", "password": ADMIN_PASSWORD}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/auth/login",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code


def status(port: int, path: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def fresh_start_logs_in_at_once(tmp_path: Path, database_url: str) -> None:
    env = veloz_env(
        tmp_path / "wal",
        VELOZ_PRESET="release",
        VELOZ_LOG_LEVEL="info",
        VELOZ_JWT_SECRET=JWT_SECRET,
        VELOZ_ADMIN_PASSWORD=ADMIN_PASSWORD,
        VELOZ_DATABASE_URL=database_url,
        VELOZ_LOGIN_RATE_LIMIT="1000",  # the test logs in as fast as it can
    )
    port = free_port()
    log = tmp_path / "engine.log"
    with log.open("wb") as out:
        process = start_veloz(
            ["engine", "--port", str(port), "--host", "127.0.0.1"],
            env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        seen: list[int] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                ready, _ = status(port, "/health/ready")
                _, health = status(port, "/health")
            except OSError:
                time.sleep(0.005)  # not listening yet
                continue
            seen.append(post_login(port))
            if ready == 200 or health.get("phase") == "ready":
                assert post_login(port) == 200, log.read_text()[-3000:]
                break
        else:
            pytest.fail(f"not ready within 30 s:\n{log.read_text()[-3000:]}")
        assert 401 not in seen, (seen, log.read_text()[-3000:])
        assert set(seen) <= {200, 503}, seen
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    assert process.returncode == 0, log.read_text()[-3000:]


@pytest.mark.parametrize("attempt", range(4))
def test_sqlite_fresh_start_logs_the_admin_in_at_once(tmp_path, attempt):
    fresh_start_logs_in_at_once(tmp_path, f"sqlite:///{tmp_path / 'veloz.db'}")


@pytest.mark.parametrize("attempt", range(3))
def test_postgres_fresh_start_logs_the_admin_in_at_once(tmp_path, pg_url, attempt):
    fresh_start_logs_in_at_once(tmp_path, pg_url)
