"""verify_backup.sh on backups a real engine's host made: checksums, ages against the DR
checklist, incomplete sets, and -t test restores that catch a corrupted or truncated
backup even when its manifest was rewritten to match."""

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.integration.backup.host import Host


def rewrite_manifest(directory: Path) -> None:
    """A manifest that matches whatever the directory now holds (what a backup tool that
    copied a damaged file would write)."""
    lines = [
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.relative_to(directory)}\n"
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != "MANIFEST.sha256"
    ]
    (directory / "MANIFEST.sha256").write_text("".join(lines))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    host = Host(tmp_path_factory.mktemp("pristine"))
    with host.engine() as engine:
        coids = [engine.order("BUY", "0.01", "60000")["client_order_id"] for _ in range(3)]
        engine.order("BUY", "0.01", "40000")  # rests
        engine.wait_final(coids)
        done = host.run("backup_all.sh")
        assert done.returncode == 0, done.stderr
    return host.root


@pytest.fixture
def host(pristine: Path, tmp_path: Path) -> Host:
    shutil.copytree(pristine, tmp_path / "host", symlinks=True)
    return Host(tmp_path / "host")


def only(host: Host, kind: str) -> Path:
    (found,) = host.sets(kind)
    return found


def test_fresh_backups_pass_and_the_report_is_written(host, tmp_path):
    report = tmp_path / "backup_report.txt"
    done = host.run("verify_backup.sh", "-t", "-r", str(report))
    assert done.returncode == 0, done.stdout + done.stderr
    assert report.read_text() == done.stdout
    lines = done.stdout.splitlines()
    assert lines[-1].startswith("RESULT PASSED")
    for expected in (
        "journal (wal): newest wal/",
        "configuration (config): newest config/",
        "database (sqlite): newest history/",
        "test restore journal",
        "test restore SQLite history",
    ):
        assert any(line.startswith("OK") and expected in line for line in lines), expected
    assert not any(line.startswith("FAIL") for line in lines)


def test_a_corrupted_file_fails_its_checksum(host, tmp_path):
    db = only(host, "history") / "veloz.db"
    data = bytearray(db.read_bytes())
    data[len(data) // 2] ^= 0xFF
    db.write_bytes(bytes(data))
    report = tmp_path / "report.txt"
    done = host.run("verify_backup.sh", "-r", str(report))
    assert done.returncode == 5, done.stderr
    fail = [line for line in report.read_text().splitlines() if line.startswith("FAIL")]
    assert len(fail) == 1 and "history/" in fail[0] and "checksums do not match" in fail[0]
    assert "veloz.db" in fail[0]
    assert report.read_text().splitlines()[-1] == "RESULT FAILED: 1 of 6 checks"


def test_a_truncated_file_fails_its_checksum(host):
    segment = only(host, "wal") / "orders_current.wal"
    segment.write_bytes(segment.read_bytes()[:-7])
    done = host.run("verify_backup.sh")
    assert done.returncode == 5
    assert "FAIL wal/" in done.stdout and "orders_current.wal" in done.stdout


def test_a_truncated_journal_with_a_matching_manifest_fails_the_test_restore(host):
    snapshot = only(host, "wal")
    segment = snapshot / "orders_current.wal"
    segment.write_bytes(segment.read_bytes()[:-40])  # the last record cut in half
    rewrite_manifest(snapshot)
    assert host.run("verify_backup.sh").returncode == 0, "checksums alone cannot see it"
    done = host.run("verify_backup.sh", "-t")
    assert done.returncode == 5, done.stdout
    assert "FAIL test restore journal" in done.stdout and "snapshot.json says" in done.stdout


def test_a_history_copy_missing_rows_fails_the_test_restore(host):
    history = only(host, "history")
    conn = sqlite3.connect(history / "veloz.db")
    conn.execute("DELETE FROM fills")
    conn.commit()
    conn.close()
    rewrite_manifest(history)
    done = host.run("verify_backup.sh", "-t")
    assert done.returncode == 5, done.stdout
    assert "FAIL test restore SQLite history" in done.stdout
    assert "fills: expected 3, found 0" in done.stdout


@pytest.mark.parametrize(
    ("kind", "label"),
    [("wal", "journal (wal)"), ("config", "configuration (config)"), ("history", "database")],
)
def test_an_old_backup_fails_its_age(host, kind, label):
    only(host, kind).rename(host.backup / kind / "20200101T000000Z")
    done = host.run("verify_backup.sh")
    assert done.returncode == 5, done.stdout
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    assert label in line and "20200101T000000Z" in line and "over the limit" in line


def test_the_age_limits_are_settings(host):
    assert host.run("verify_backup.sh", VELOZ_VERIFY_MAX_AGE_WAL="1").returncode in (0, 5)
    only(host, "wal").rename(host.backup / "wal" / "20200101T000000Z")
    done = host.run("verify_backup.sh", VELOZ_VERIFY_MAX_AGE_WAL="999999999")
    assert done.returncode == 0, done.stdout


def test_a_missing_kind_fails(host):
    shutil.rmtree(host.backup / "config")
    done = host.run("verify_backup.sh")
    assert done.returncode == 5
    assert "FAIL configuration (config): no complete backup" in done.stdout


def test_an_incomplete_set_is_reported_but_not_a_failure(host):
    partial = host.backup / "wal" / "29991231T235959Z"
    partial.mkdir()
    (partial / "orders_current.wal").write_bytes(b"half")
    done = host.run("verify_backup.sh", "-t")
    assert done.returncode == 0, done.stdout
    assert "WARN wal/29991231T235959Z: incomplete" in done.stdout
    tested = next(line for line in done.stdout.splitlines() if "test restore journal" in line)
    assert tested.startswith("OK") and "29991231T235959Z" not in tested


def test_no_history_store_means_no_database_check(host):
    shutil.rmtree(host.backup / "history")
    done = host.run("verify_backup.sh", "-t", VELOZ_DATABASE_URL="none")
    assert done.returncode == 0, done.stdout
    assert "OK   database: VELOZ_DATABASE_URL=none" in done.stdout
