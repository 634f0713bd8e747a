"""A host for the backup scripts in a temporary directory: its journal, SQLite history
store, configuration and backup root, the settings the scripts read, and a real
`veloz engine` on a free loopback port that takes orders through the API."""

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.processes import OPEN_RISK_LIMITS, free_port, start_veloz, veloz_env

REPO = Path(__file__).resolve().parents[3]
SCRIPTS = REPO / "scripts" / "backup"
VELOZ_BIN = REPO / ".venv" / "bin" / "veloz"
SECRET = "jwt-secret-that-must-never-be-printed-7Qx"


def run_script(
    script: Path, *args: str, backup_dir: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """A backup script alone, outside any Host: no VELOZ_* from this process, no env file,
    the settings given."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VELOZ_")}
    environment |= {"VELOZ_ENV_FILE": "/dev/null", "VELOZ_BACKUP_DIR": str(backup_dir)} | env
    return subprocess.run(
        ["bash", str(script), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@dataclass
class Host:
    root: Path
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for folder in (self.backup, self.config, self.wal.parent):
            folder.mkdir(parents=True, exist_ok=True)
        (self.config / "veloz.env").write_text(f"VELOZ_JWT_SECRET={SECRET}\n")
        (self.config / "veloz.env").chmod(0o600)
        (self.config / "risk_limits.yaml").write_text(OPEN_RISK_LIMITS.read_text())
        (self.config / "tls").mkdir(mode=0o750, exist_ok=True)
        (self.config / "tls" / "veloz.key").write_text("not a real key\n")
        (self.config / "tls" / "veloz.key").chmod(0o600)

    @property
    def backup(self) -> Path:
        return self.root / "backup"

    @property
    def config(self) -> Path:
        return self.root / "etc" / "veloz"

    @property
    def wal(self) -> Path:
        return self.root / "var" / "lib" / "veloz" / "wal"

    @property
    def db(self) -> Path:
        return self.root / "var" / "lib" / "veloz" / "veloz.db"

    def env(self, **extra: str) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("VELOZ_", "AWS_"))}
        return (
            clean
            | {
                "VELOZ_ENV_FILE": str(self.root / "no-env-file"),
                "VELOZ_BACKUP_DIR": str(self.backup),
                "VELOZ_WAL_DIR": str(self.wal),
                "VELOZ_DATABASE_URL": f"sqlite:///{self.db}",
                "VELOZ_CONFIG_DIR": str(self.config),
                "VELOZ_BIN": str(VELOZ_BIN),
                "TERM": "dumb",
                "COLUMNS": "120",
            }
            | self.extra
            | extra
        )

    def run(self, script: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPTS / script), *args],
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def sets(self, kind: str) -> list[Path]:
        """Complete backups of `kind`, oldest first."""
        return sorted(
            p.parent
            for p in (self.backup / kind).glob("*/MANIFEST.sha256")
            if not p.parent.is_symlink()
        )

    @contextlib.contextmanager
    def engine(self) -> Iterator["Engine"]:
        port = free_port()
        settings = veloz_env(self.wal, VELOZ_DATABASE_URL=f"sqlite:///{self.db}")
        settings.update(VELOZ_STORE_SNAPSHOT_INTERVAL_S="1", **self.extra)
        log = (self.root / "engine.log").open("ab")
        process = start_veloz(
            ["engine", "--port", str(port), "--host", "127.0.0.1"],
            settings,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        engine = Engine(f"http://127.0.0.1:{port}", process, self.root / "engine.log")
        try:
            engine.wait_ready()
            yield engine
        finally:
            engine.stop()
            log.close()


@dataclass
class Engine:
    base: str
    process: subprocess.Popen[bytes]
    log: Path

    def call(self, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data else {}
        request = urllib.request.Request(self.base + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def wait_ready(self, within_s: float = 60) -> None:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the engine exited: {self.log.read_text()[-3000:]}")
            with contextlib.suppress(OSError, ValueError):
                if self.call("/health/ready")[0] == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"the engine did not become ready: {self.log.read_text()[-3000:]}")

    def order(self, side: str, qty: str, price: str) -> dict[str, Any]:
        status, answer = self.call(
            "/api/order",
            "POST",
            {"side": side, "symbol": "BTCUSDT", "qty": qty, "price": price},
        )
        assert status == 200 and answer["ok"], answer
        return dict(answer)

    def wait_final(
        self, coids: list[str], statuses: tuple[str, ...] = ("FILLED",), within_s: float = 20
    ) -> None:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            orders = {o["client_order_id"]: o for o in self.call("/api/orders_state")[1]["orders"]}
            if all(orders.get(c, {}).get("status") in statuses for c in coids):
                return
            time.sleep(0.05)
        raise AssertionError(f"orders not {statuses}: {coids}")

    def state(self) -> dict[str, Any]:
        """What the round trips compare: orders, fills, positions and balances."""
        orders = self.call("/api/orders_state")[1]["orders"]
        trades = self.call("/api/trades?limit=1000")[1]["trades"]
        return {
            "orders": sorted(orders, key=lambda o: o["client_order_id"]),
            "trades": sorted(trades, key=lambda t: t["trade_id"]),
            "positions": [
                {k: p[k] for k in ("symbol", "qty", "avg_price", "realized_pnl", "fees")}
                for p in self.call("/api/positions")[1]["positions"]
            ],
            "balances": self.call("/api/account")[1]["balances"],
        }

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)
