"""backup_config.sh (modes kept, nothing of the contents printed), `veloz db backup|counts`
(SQLite's online backup API while the engine writes; PostgreSQL refused with a pointer to
backup_postgres.sh), and backup_all.sh's order and its failure of one step."""

import json
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from tests.integration.backup.host import SECRET, VELOZ_BIN, Host


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


def veloz(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VELOZ_BIN), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_config_backup_keeps_modes_and_never_prints_contents(host):
    done = host.run("backup_config.sh")
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    (copy,) = host.sets("config")
    for name in ("veloz.env", "risk_limits.yaml", "tls", "tls/veloz.key"):
        original, copied = (host.config / name).stat(), (copy / name).stat()
        assert stat.S_IMODE(copied.st_mode) == stat.S_IMODE(original.st_mode), name
        assert copied.st_mtime_ns == original.st_mtime_ns, name
    assert (copy / "veloz.env").read_text() == f"VELOZ_JWT_SECRET={SECRET}\n"
    manifest = (copy / "MANIFEST.sha256").read_text()
    assert SECRET not in manifest and "tls/veloz.key" in manifest
    assert stat.S_IMODE((host.backup / "config").stat().st_mode) == 0o700


def test_db_backup_copies_while_the_engine_writes(host, tmp_path):
    with host.engine() as engine:
        coids = [engine.order("BUY", "0.01", "60000")["client_order_id"] for _ in range(5)]
        engine.wait_final(coids)
        out, info = tmp_path / "copy.db", tmp_path / "info.json"
        done = veloz("db", "backup", str(out), "--url", f"sqlite:///{host.db}", "--info", str(info))
        assert done.returncode == 0, done.stderr
    assert not Path(f"{out}-wal").exists(), "a single file"
    conn = sqlite3.connect(out)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM fills").fetchone()[0] == 5
    facts = json.loads(info.read_text())
    assert facts["counts"]["orders"] == 5 and facts["counts"]["fills"] == 5
    assert facts["projector_last_seq"] > 0 and facts["url"] == f"sqlite:///{host.db}"
    counted = veloz("db", "counts", "--url", f"sqlite:///{out}", "--json")
    assert json.loads(counted.stdout) == facts["counts"]
    assert veloz("db", "backup", str(out), "--url", f"sqlite:///{host.db}").returncode == 1


def test_db_backup_refuses_postgres_with_a_pointer_and_no_password():
    done = veloz("db", "backup", "/tmp/never.db", "--url", "postgresql://veloz:hunter2@db/veloz")
    assert done.returncode == 2
    assert "backup_postgres.sh" in done.stderr and "hunter2" not in done.stderr


def test_db_counts_compares_with_an_expected_file(tmp_path):
    db = tmp_path / "x.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE orders (id INTEGER)")
    conn.execute("INSERT INTO orders VALUES (1), (2)")
    conn.commit()
    conn.close()
    (tmp_path / "ok.json").write_text('{"counts": {"orders": 2}}')
    (tmp_path / "bad.json").write_text('{"orders": 3, "fills": 1}')
    url = f"sqlite:///{db}"
    assert (
        veloz("db", "counts", "--url", url, "--expect", str(tmp_path / "ok.json")).returncode == 0
    )
    bad = veloz("db", "counts", "--url", url, "--expect", str(tmp_path / "bad.json"))
    assert bad.returncode == 1
    assert "orders: expected 3, found 2" in bad.stderr
    assert "fills: expected 1, found no such table" in bad.stderr
    missing = veloz("db", "counts", "--url", f"sqlite:///{tmp_path}/nothing.db")
    assert missing.returncode == 1 and "no SQLite database" in missing.stderr


def test_backup_all_runs_every_step_and_names_the_one_that_failed(host):
    with host.engine() as engine:
        engine.order("BUY", "0.01", "60000")
    (host.db).unlink()  # the history store is gone: its step fails, the others run
    done = host.run("backup_all.sh")
    assert done.returncode == 1, done.stderr
    assert "history store (SQLite) failed" in done.stderr.splitlines()[-1]
    assert len(host.sets("wal")) == 1 and len(host.sets("config")) == 1
    assert host.sets("history") == [] and not list((host.backup / "history").glob("2*"))


def test_backup_all_takes_the_store_before_the_journal(host):
    with host.engine() as engine:
        coids = [engine.order("BUY", "0.01", "60000")["client_order_id"] for _ in range(3)]
        engine.wait_final(coids)
        done = host.run("backup_all.sh")
        assert done.returncode == 0, done.stderr
    history, wal = host.sets("history")[-1], host.sets("wal")[-1]
    assert history.name <= wal.name
    store_seq = json.loads((history / "info.json").read_text())["projector_last_seq"]
    assert store_seq <= json.loads((wal / "snapshot.json").read_text())["last_seq"]


def test_full_restore_refuses_a_store_backup_ahead_of_the_journal_backup(host, tmp_path):
    with host.engine() as engine:
        coid = engine.order("BUY", "0.01", "60000")["client_order_id"]
        engine.wait_final([coid])
        assert host.run("backup_all.sh").returncode == 0
    history = host.sets("history")[-1]
    info = json.loads((history / "info.json").read_text())
    info["projector_last_seq"] = 10_000
    (history / "info.json").write_text(json.dumps(info, indent=2))
    subprocess.run(
        "sha256sum info.json veloz.db > MANIFEST.sha256", shell=True, check=True, cwd=history
    )
    env_before = (host.config / "veloz.env").read_text()
    done = host.run("full_restore.sh", "-y", "-s", str(host.backup))
    assert done.returncode == 5, done.stderr
    assert "holds journal entries up to 10000" in done.stderr
    assert (host.config / "veloz.env").read_text() == env_before
    assert not list(host.root.rglob("*.replaced-*")), "nothing was replaced"
