"""The history projector in its own process (`veloz projector`), against real `veloz`
processes: orders and audit records placed over HTTP reach the store through it; it is
restarted after a kill -9 and loses nothing; after a kill -9 of the engine it projects
exactly the durable journal; and the journal's retention waits for a projector that is
not running."""

import json
import os
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.test_runbooks import call
from tests.support.processes import eventually, free_port, start_veloz, veloz_env
from veloz.journal.durable_mark import read_durable_mark
from veloz.journal.segments import list_segments
from veloz.journal.tail import JournalTail
from veloz.persistence.projector_status import read_status

pytestmark = pytest.mark.slow


class Engine:
    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.wal = tmp_path / "wal"
        self.db = tmp_path / "veloz.db"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = veloz_env(self.wal, **env)
        self.log = open(tmp_path / "engine.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = start_veloz(
            ["engine", "--port", str(self.port), "--host", "127.0.0.1"],
            self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        eventually(self._ready, 30, "the engine is ready")

    def _ready(self) -> bool:
        assert self.process.poll() is None, "the engine exited"
        try:
            return bool(json.loads(call(self.base, "/health")[1]).get("phase") == "ready")
        except OSError:
            return False

    def place(self, coid: str) -> None:
        body = {
            "side": "BUY",
            "symbol": "BTCUSDT",
            "qty": 0.01,
            "price": 60000,
            "client_order_id": coid,
        }
        status, answer = call(
            self.base, "/api/order", "POST", body, {"Content-Type": "application/json"}
        )
        assert status == 200, answer

    def database(self) -> dict[str, str]:
        ready = json.loads(call(self.base, "/health/ready")[1])
        return ready["components"]["database"]  # type: ignore[no-any-return]

    def projector_pid(self) -> int | None:
        # The engine's children: the projector and the journal's sync helper.
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        pids = [int(p) for p in children.read_text().split()] if children.exists() else []
        projectors = [pid for pid in pids if b"projector" in _cmdline(pid)]
        return projectors[0] if projectors else None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        self.process.wait(timeout=60)
        self.log.close()


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # it has exited meanwhile
        return b""


@contextmanager
def engine(tmp_path: Path, **env: str) -> Iterator[Engine]:
    running = Engine(tmp_path, **env)
    try:
        yield running
    finally:
        running.stop()


def high_water(db: Path) -> int:
    (row,) = stored(db, "SELECT last_seq FROM projector_state")
    return int(str(row[0]))


def stored(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def stored_orders(db: Path) -> set[str]:
    return {row[0] for row in stored(db, "SELECT client_order_id FROM orders")}  # type: ignore[misc]


def audited_orders(db: Path) -> set[str]:
    rows = stored(db, "SELECT params FROM audit_log WHERE action = 'POST /api/order'")
    return {json.loads(str(row[0])).get("client_order_id") for row in rows}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by a dead parent's reaper) counts as gone.
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split()[2] != "Z"


def last_journal_seq(wal: Path) -> int:
    read = JournalTail(wal).read(0, None, 1_000_000)
    return read.records[-1].seq if read.records else 0


def test_orders_and_audit_records_placed_over_http_reach_the_store_through_the_projector(
    tmp_path,
):
    with engine(tmp_path) as running:
        assert running.projector_pid() is not None
        placed = {f"pp-{i}" for i in range(25)}
        for coid in sorted(placed):
            running.place(coid)
        eventually(lambda: stored_orders(running.db) >= placed, 15, "orders in the store")
        eventually(lambda: audited_orders(running.db) >= placed, 15, "audit records in the store")
        eventually(
            lambda: (
                running.database()["status"] == "ok"
                and running.database()["detail"].endswith("; 0 journal entries behind")
            ),
            10,
            "health shows the projector caught up",
        )
        metrics = call(running.base, "/metrics")[1].decode()
        assert "veloz_store_projector_up 1.0" in metrics


def test_a_killed_projector_is_started_again_and_nothing_is_lost(tmp_path):
    with engine(tmp_path) as running:
        first = running.projector_pid()
        assert first is not None
        running.place("before-kill")
        os.kill(first, signal.SIGKILL)
        placed = {"before-kill"} | {f"during-{i}" for i in range(20)}
        for coid in sorted(placed - {"before-kill"}):
            running.place(coid)
        eventually(
            lambda: running.projector_pid() not in (None, first), 15, "a new projector process"
        )
        eventually(lambda: stored_orders(running.db) >= placed, 15, "every order in the store")
        eventually(lambda: audited_orders(running.db) >= placed, 15, "every audit record stored")


def test_after_a_kill_9_of_the_engine_the_projector_projects_exactly_the_durable_journal(
    tmp_path,
):
    running = Engine(tmp_path)
    child = running.projector_pid()
    assert child is not None
    placed = {f"k-{i}" for i in range(40)}
    for coid in sorted(placed):
        running.place(coid)
    running.stop(signal.SIGKILL)
    # The kernel tells the child its engine died: it drains and exits.
    eventually(lambda: not pid_alive(child), 30, "the projector exits after its engine")
    # Entries written but not yet synced when it died may be in the file past the mark:
    # the projector stops at the mark, exactly.
    durable = read_durable_mark(running.wal)
    assert 0 < durable <= last_journal_seq(running.wal)
    assert high_water(running.db) == durable
    # Every acknowledged order was durable before its answer, so it is in the store.
    assert stored_orders(running.db) == placed
    assert audited_orders(running.db) >= placed
    # The next engine recovers the rest of the journal; its projector follows.
    with engine(tmp_path) as again:
        ends_at = last_journal_seq(again.wal)
        eventually(
            lambda: high_water(again.db) >= ends_at,
            15,
            "the restarted projector reaches the end of the journal",
        )


def test_retention_waits_for_a_projector_that_is_not_running(tmp_path):
    small_journal = {
        "VELOZ_PROJECTOR": "external",  # nobody runs it yet
        "VELOZ_WAL_MAX_SIZE": "4096",
        "VELOZ_WAL_MAX_FILES": "1",
    }
    # A first run ends with a checkpoint (at its stop): replay no longer needs the
    # segments before it, so from now on only the projector holds them.
    with engine(tmp_path, **small_journal) as first:
        for i in range(30):
            first.place(f"a-{i}")
    with engine(tmp_path, **small_journal) as running:
        for i in range(60):
            running.place(f"r-{i}")
        segments, _ = list_segments(running.wal)
        assert len([s for s in segments if not s.is_current]) > 3
        assert segments[0].first_seq == 1  # nothing deleted: the projector has read nothing
        database = running.database()
        assert database["status"] == "degraded"
        assert "projector not running" in database["detail"]
        assert "retention waits at entry 1" in database["detail"]
        assert "veloz_store_projector_up 0.0" in call(running.base, "/metrics")[1].decode()

        projector_log = open(tmp_path / "projector.log", "ab")  # noqa: SIM115
        projector = start_veloz(
            ["projector"],
            running.env | {"VELOZ_LOG_LEVEL": "info"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=projector_log,
        )
        try:
            eventually(
                lambda: (
                    (status := read_status(running.wal)) is not None
                    and status.high_water >= read_durable_mark(running.wal)
                ),
                20,
                "the external projector caught up",
            )
            eventually(lambda: running.database()["status"] == "ok", 10, "health ok again")
            for i in range(60, 120):
                running.place(f"r-{i}")
            eventually(
                lambda: list_segments(running.wal)[0][0].first_seq != 1,
                10,
                "retention deletes what the projector has read",
            )
        finally:
            projector.send_signal(signal.SIGTERM)
            assert projector.wait(timeout=30) == 0
            projector_log.close()
        placed = {f"a-{i}" for i in range(30)} | {f"r-{i}" for i in range(120)}
        assert stored_orders(running.db) == placed
