"""Backup and restore round trips on real data, as the disaster-recovery runbook runs them:
a real engine fills orders, backup_all.sh copies journal, SQLite history store and
configuration, the host is destroyed, full_restore.sh -y -s brings it back from a
directory and from S3, and the restarted engine shows the same orders, fills, positions
and balances and is ready. A journal restore after kill -9 loses nothing acknowledged
before the backup. (PostgreSQL round trips: tests/integration/backup/test_postgres*.py.)"""

import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.integration.backup.host import Engine, Host

pytestmark = pytest.mark.slow

BUCKET = "veloz-backups"


def trade(engine: Engine) -> None:
    """Buys and sells that fill, one that rests, one cancelled."""
    filled = [engine.order("BUY", "0.05", "60000")["client_order_id"] for _ in range(4)]
    filled.append(engine.order("SELL", "0.02", "40000")["client_order_id"])
    engine.wait_final(filled)
    resting = engine.order("BUY", "0.01", "30000")["client_order_id"]  # far below the market
    doomed = engine.order("BUY", "0.01", "30001")["client_order_id"]
    engine.wait_final([resting, doomed], ("ACCEPTED",))
    status, answer = engine.call("/api/cancel", "POST", {"client_order_id": doomed})
    assert status == 200, answer
    engine.wait_final([doomed], ("CANCELLED", "CANCELED"))


def destroy(host: Host, *also: Path) -> None:
    """Journal, history store and configuration gone (and whatever else is named)."""
    for path in (host.wal, host.config, *also):
        shutil.rmtree(path)
    for db in host.db.parent.glob(host.db.name + "*"):
        db.unlink()


def restored_state(host: Host) -> dict[str, Any]:
    with host.engine() as engine:
        status, ready = engine.call("/health/ready")
        assert status == 200 and ready["ok"], ready
        return engine.state()


@pytest.fixture
def host(tmp_path: Path, s3_server) -> Host:
    s3_server.create_bucket(BUCKET)
    return Host(tmp_path / "host", extra=s3_server.env() | {"VELOZ_S3_BUCKET": f"s3://{BUCKET}"})


def test_full_restore_from_a_directory_and_from_s3(host, tmp_path):
    with host.engine() as engine:
        trade(engine)
        before = engine.state()
        done = host.run("backup_all.sh")
        assert done.returncode == 0, done.stderr
    assert len(before["trades"]) == 5 and len(before["orders"]) == 7
    assert {o["status"] for o in before["orders"]} >= {"FILLED", "ACCEPTED"}
    offsite = tmp_path / "offsite"
    shutil.copytree(host.backup, offsite, symlinks=True)

    destroy(host)
    done = host.run("full_restore.sh", "-y", "-s", str(offsite))
    assert done.returncode == 0, done.stderr
    assert "systemctl start veloz" in done.stderr.splitlines()[-1]
    assert restored_state(host) == before

    destroy(host, host.backup)  # the whole site, local backups included
    done = host.run("full_restore.sh", "-y", "-s", f"s3://{BUCKET}")
    assert done.returncode == 0, done.stderr
    after = restored_state(host)
    assert after == before
    # The restored engine trades on from where it was.
    with host.engine() as engine:
        coid = engine.order("BUY", "0.01", "60000")["client_order_id"]
        engine.wait_final([coid])


def test_a_journal_restore_after_kill_9_keeps_everything_acknowledged_before_the_backup(host):
    with host.engine() as engine:
        trade(engine)
        acked_before: list[str] = []
        stop = threading.Event()

        def keep_trading() -> None:
            while not stop.is_set():
                acked_before.append(engine.order("BUY", "0.01", "35000")["client_order_id"])

        trader = threading.Thread(target=keep_trading)
        trader.start()
        try:
            while len(acked_before) < 20:
                stop.wait(0.01)
            snapshot_of = list(acked_before)  # acknowledged before the backup starts
            done = host.run("backup_wal.sh")
            assert done.returncode == 0, done.stderr
        finally:
            stop.set()
            trader.join(timeout=30)
        refused = host.run("restore_wal.sh")
        assert refused.returncode == 3, refused.stderr  # the engine still holds the journal
        engine.kill()
    # The journal is lost (say the disk went bad): garbage where it was.
    (host.wal / "orders_current.wal").write_bytes(b"\0" * 4096)
    done = host.run("restore_wal.sh")
    assert done.returncode == 0, done.stderr
    (aside,) = host.wal.parent.glob("wal.replaced-*")
    assert (aside / "orders_current.wal").read_bytes() == b"\0" * 4096
    with host.engine() as engine:
        orders = {
            o["client_order_id"]: o
            for o in engine.call("/api/orders_state?limit=1000")[1]["orders"]
        }
    missing = [coid for coid in snapshot_of if coid not in orders]
    assert not missing, f"acknowledged before the backup, lost: {missing}"
    assert all(orders[coid]["status"] == "ACCEPTED" for coid in snapshot_of)
