"""Strategies from the outside: `veloz strategy` against a running `veloz engine --port`,
then kill -9 and a restart: what was running runs again with its own position, and a
bad strategy is refused by the CLI with exit 2 and nothing added."""

import json
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_service_mode import get, wait_until_serving
from tests.support.processes import free_port, start_veloz, veloz_env

REPO = Path(__file__).resolve().parents[2]
BUYER = "tests.support.strategies:QuoteBuyer"

pytestmark = pytest.mark.slow


def cli(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = veloz_env(Path("/nonexistent"), VELOZ_PORT=str(port))
    return subprocess.run(
        [sys.executable, "-m", "veloz", "strategy", *args],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def engine(wal_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = veloz_env(wal_dir, VELOZ_STRATEGY_PATH=str(REPO))
    process = start_veloz(
        ["engine", "--port", str(port), "--host", "127.0.0.1"],
        env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    wait_until_serving(port, process)
    return process


def strategy(port: int, strategy_id: str) -> dict[str, Any]:
    status, body = get(port, f"/api/strategies/{strategy_id}")
    assert status == 200, body
    return body


def wait_for_fills(port: int, strategy_id: str, fills: int) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = strategy(port, strategy_id)
        position = Decimal(str(found["position"]))
        if position > 0 and found["open_orders"] == 0 and found["fills"] >= fills:
            return found
        time.sleep(0.05)
    pytest.fail(f"{strategy_id} did not fill: {strategy(port, strategy_id)}")


def test_strategies_survive_kill_9(tmp_path: Path) -> None:
    wal_dir, port = tmp_path / "wal", free_port()
    process = engine(wal_dir, port)
    try:
        added = cli(port, "add", "buyer", "--strategy", BUYER, "--symbol", "btcusdt",
                    "--param", "qty=0.01", "--param", "buys=1")  # fmt: skip
        assert added.returncode == 0, added.stderr
        paused = cli(port, "add", "later", "--strategy", BUYER, "--symbol", "BTCUSDT",
                     "--no-start")  # fmt: skip
        assert paused.returncode == 0, paused.stderr
        before = wait_for_fills(port, "buyer", 1)
        refused = cli(port, "add", "bad", "--strategy", "ema_cross", "--symbol", "BTCUSDT",
                      "--param", "fast=0")  # fmt: skip
        assert refused.returncode == 2
        assert "parameter fast" in refused.stderr
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    process = engine(wal_dir, port)
    try:
        listed = cli(port, "list")
        assert listed.returncode == 0, listed.stderr
        assert "buyer" in listed.stdout and "later" in listed.stdout and "bad" not in listed.stdout
        after = strategy(port, "buyer")
        assert after["state"] == "running"
        # Its own position came back from the journal; it does not buy a second time.
        assert after["position"] == before["position"]
        time.sleep(0.3)  # quotes keep coming every 10 ms
        assert strategy(port, "buyer")["orders"] == 0
        assert strategy(port, "later")["state"] == "added"
        started = cli(port, "start", "later")
        assert started.returncode == 0, started.stderr
        wait_for_fills(port, "later", 1)
        missing = cli(port, "stop", "nope")
        assert missing.returncode == 2 and "no strategy nope" in missing.stderr
        status, stream_check = get(port, "/api/strategies")
        assert status == 200
        assert json.dumps(stream_check)  # answers are plain JSON
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
