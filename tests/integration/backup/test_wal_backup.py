"""backup_wal.sh and restore_wal.sh against a real engine: snapshots while it takes
orders, hard links between snapshots, retention, and a restore that refuses while the
engine holds the journal, refuses a damaged backup, and moves the current journal aside."""

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.integration.backup.host import VELOZ_BIN, Host
from veloz.journal.framing import EntryType, encode_record
from veloz.journal.verify import iterate_records, verify_directory


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


def _records(directory: Path) -> dict[int, bytes]:
    return {record.seq: record.payload for _, record in iterate_records(directory)}


def test_snapshots_while_the_engine_takes_orders(host):
    with host.engine() as engine:
        placed = []
        for _ in range(6):
            placed.append(engine.order("BUY", "0.01", "60000")["client_order_id"])
            done = host.run("backup_wal.sh", VELOZ_BACKUP_KEEP_WAL="4")
            assert done.returncode == 0, done.stderr
            assert Path(done.stdout.strip()) == host.sets("wal")[-1]
        engine.wait_final(placed)
    sets = host.sets("wal")
    assert len(sets) == 4, "retention keeps the newest VELOZ_BACKUP_KEEP_WAL"
    assert (host.backup / "wal" / "latest").resolve() == sets[-1]
    final = _records(host.wal)
    previous_last = 0
    for snapshot in sets:
        assert not verify_directory(snapshot).damaged
        described = json.loads((snapshot / "snapshot.json").read_text())
        copy = _records(snapshot)
        assert described["records"] == len(copy)
        assert described["last_seq"] == max(copy) >= previous_last
        previous_last = described["last_seq"]
        assert all(final[seq] == payload for seq, payload in copy.items())
        manifest = (snapshot / "MANIFEST.sha256").read_text()
        assert "snapshot.json" in manifest and "orders_current.wal" in manifest


def test_completed_segments_are_hard_links_to_the_previous_snapshot(host):
    with host.engine() as engine:
        # Small segments: a few orders rotate the journal.
        for _ in range(3):
            engine.order("BUY", "0.01", "40000")
    host.extra = {"VELOZ_WAL_MAX_SIZE": "4096"}
    with host.engine() as engine:
        for _ in range(30):
            engine.order("BUY", "0.01", "40000")
        first = host.run("backup_wal.sh")
        second = host.run("backup_wal.sh")
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    older, newer = host.sets("wal")[-2:]
    completed = sorted(newer.glob("orders_0*.wal"))
    assert completed, "the journal should have rotated"
    for segment in completed:
        assert os.stat(segment).st_ino == os.stat(older / segment.name).st_ino
    assert "hard-linked" in second.stderr


def test_restore_refuses_while_the_engine_holds_the_journal(host):
    with host.engine() as engine:
        engine.order("BUY", "0.01", "60000")
        assert host.run("backup_wal.sh").returncode == 0
        done = host.run("restore_wal.sh")
        assert done.returncode == 3, done.stderr
        assert "an engine holds the journal" in done.stderr
        assert not list(host.wal.parent.glob("wal.replaced-*"))


def test_restore_moves_the_journal_aside_and_verifies(host):
    with host.engine() as engine:
        coid = engine.order("BUY", "0.01", "60000")["client_order_id"]
        engine.wait_final([coid])
        assert host.run("backup_wal.sh").returncode == 0
        engine.order("BUY", "0.01", "40000")  # after the backup
    before = _records(host.wal)
    host.wal.chmod(0o750)
    if os.geteuid() == 0:  # as root, the restored journal gets the engine user's ownership
        os.chown(host.wal, 65534, 65534)
    backup = host.sets("wal")[-1]
    done = host.run("restore_wal.sh", backup.name)  # a stamp is enough
    assert done.returncode == 0, done.stderr
    assert host.wal.stat().st_mode & 0o777 == 0o750
    if os.geteuid() == 0:
        assert {p.stat().st_uid for p in [host.wal, *host.wal.iterdir()]} == {65534}
    (aside,) = host.wal.parent.glob("wal.replaced-*")
    assert _records(aside) == before, "the replaced journal is kept as it was"
    assert _records(host.wal) == _records(backup)
    assert "veloz wal verify: OK" in done.stderr


def test_restore_refuses_a_corrupted_or_incomplete_backup(host):
    with host.engine() as engine:
        engine.order("BUY", "0.01", "60000")
        assert host.run("backup_wal.sh").returncode == 0
    backup = host.sets("wal")[-1]
    segment = backup / "orders_current.wal"
    data = bytearray(segment.read_bytes())
    data[40] ^= 0xFF
    segment.write_bytes(bytes(data))
    done = host.run("restore_wal.sh", str(backup))
    assert done.returncode == 5, done.stderr
    assert "fails its checksums" in done.stderr
    (backup / "MANIFEST.sha256").unlink()
    done = host.run("restore_wal.sh", str(backup))
    assert done.returncode == 5 and "incomplete" in done.stderr
    assert not list(host.wal.parent.glob("wal.replaced-*")), "nothing moved"
    assert not list(host.wal.parent.glob("wal.restoring-*")), "no staging left behind"


def test_restore_refuses_a_backup_whose_checksums_match_but_whose_journal_does_not(host):
    with host.engine() as engine:
        engine.order("BUY", "0.01", "60000")
        assert host.run("backup_wal.sh").returncode == 0
    backup = host.sets("wal")[-1]
    segment = backup / "orders_current.wal"
    data = bytearray(segment.read_bytes())
    data[40] ^= 0xFF  # damage a record, then a manifest that matches it
    segment.write_bytes(bytes(data))
    subprocess.run(
        "sha256sum orders_current.wal snapshot.json > MANIFEST.sha256",
        shell=True,
        check=True,
        cwd=backup,
    )
    done = host.run("restore_wal.sh", str(backup))
    assert done.returncode == 5, done.stderr
    assert "does not verify" in done.stderr


def test_a_damaged_journal_fails_the_backup_and_leaves_nothing(host):
    host.wal.mkdir(parents=True)
    (host.wal / "orders_0000000000000001.wal").write_bytes(b"not a record at all" * 3)
    (host.wal / "orders_current.wal").write_bytes(encode_record(EntryType.OrderNew, 2, 1, b"x"))
    done = host.run("backup_wal.sh")
    assert done.returncode == 1, done.stderr
    assert "the journal itself is damaged" in done.stderr
    assert host.sets("wal") == [] and not any((host.backup / "wal").glob("2*"))


def _projected_through(host: Host) -> int:
    conn = sqlite3.connect(host.db)
    try:
        return int(conn.execute("SELECT max(last_seq) FROM projector_state").fetchone()[0])
    finally:
        conn.close()


def test_a_store_ahead_of_the_restored_journal_is_pointed_out(host):
    with host.engine() as engine:
        first = engine.order("BUY", "0.01", "60000")["client_order_id"]
        engine.wait_final([first])
        assert host.run("backup_wal.sh").returncode == 0
        later = engine.order("BUY", "0.01", "60000")["client_order_id"]
        engine.wait_final([later])
    backup = host.sets("wal")[-1]
    last = json.loads((backup / "snapshot.json").read_text())["last_seq"]
    assert _projected_through(host) > last
    done = host.run("restore_wal.sh")
    assert done.returncode == 0, done.stderr
    warning = [line for line in done.stderr.splitlines() if "WARNING" in line]
    assert len(warning) == 1 and f"ends at {last}" in warning[0] and "db rebuild" in warning[0]
    rebuilt = subprocess.run(
        [str(VELOZ_BIN), "db", "rebuild", "--url", f"sqlite:///{host.db}", "--dir", str(host.wal)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert _projected_through(host) == last
    again = host.run("restore_wal.sh")
    assert again.returncode == 0 and "WARNING" not in again.stderr
