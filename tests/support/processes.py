"""Running `veloz` as a real subprocess, the way an operator or a supervisor does."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

OPEN_RISK_LIMITS = Path(__file__).resolve().parent / "risk_limits_open.yaml"
SHIPPED_RISK_LIMITS = Path(__file__).resolve().parents[2] / "config" / "risk_limits.yaml"


def veloz_env(wal_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VELOZ_")}
    env.update(
        VELOZ_WAL_DIR=str(wal_dir),
        # Beside the journal, in the test's own directory.
        VELOZ_DATABASE_URL=f"sqlite:///{wal_dir.parent / 'veloz.db'}",
        VELOZ_LOG_LEVEL="warn",
        VELOZ_SIM_TICK_INTERVAL_MS="10",
        VELOZ_SIM_LATENCY_MS="0",
        VELOZ_MARKET_SYMBOL="BTCUSDT,ETHUSDT",
        VELOZ_SIM_BALANCES="USDT=100000000,BTC=1000,ETH=10000",
        # Not about risk: no limits and no order-rate cap unless a test sets them.
        VELOZ_RISK_LIMITS_FILE=str(OPEN_RISK_LIMITS),
        VELOZ_ORDER_RATE_LIMIT="1000000",
    )
    env.update(extra)
    return env


def start_veloz(args: list[str], env: dict[str, str], **popen: object) -> subprocess.Popen[bytes]:
    """`veloz <args>` with pipes for stdin, stdout and stderr unless `popen` says otherwise.
    A test that does not read a pipe must redirect it: a full pipe blocks the engine's
    logging, and with it the engine."""
    streams: dict[str, object] = {
        "stdin": subprocess.PIPE,
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
    }
    return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
        [sys.executable, "-m", "veloz", *args], env=env, **(streams | popen)
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eventually(check: Callable[[], bool], within_s: float, what: str) -> None:
    """Poll `check` until it holds (another process: there is no event to await); fail
    the test naming `what` after `within_s`."""
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within_s} s: {what}")
        time.sleep(0.1)
