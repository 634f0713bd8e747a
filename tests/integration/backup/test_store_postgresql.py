"""backup_all.sh, verify_backup.sh -t and full_restore.sh when the history store is
PostgreSQL: they hand the database to helper B's backup_postgres.sh / restore_postgres.sh
and check what comes back with `veloz db counts` (the PITR and dump round trips
themselves: test_postgres*.py)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.backup.host import Host


@pytest.fixture
def host(tmp_path: Path, pg_url: str) -> Host:
    return Host(tmp_path / "host", extra={"VELOZ_DATABASE_URL": pg_url})


def databases(pg_url: str) -> list[str]:
    admin = pg_url.rsplit("/", 1)[0] + "/postgres"
    listed = subprocess.run(
        ["psql", admin, "-At", "-c", "SELECT datname FROM pg_database"],
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.split()


def test_backup_verify_and_full_restore_with_postgresql(host, pg_url, tmp_path):
    with host.engine() as engine:
        coids = [engine.order("BUY", "0.01", "60000")["client_order_id"] for _ in range(3)]
        engine.wait_final(coids)
        before = engine.state()
        done = host.run("backup_all.sh")
        assert done.returncode == 0, done.stderr
    assert "backup_postgres.sh -t full" in done.stderr
    assert len(host.sets("postgres/full")) == 1 and host.sets("history") == []

    verified = host.run("verify_backup.sh", "-t")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "OK   database (postgres): newest postgres/full/" in verified.stdout
    assert "OK   test restore PostgreSQL" in verified.stdout
    assert not [name for name in databases(pg_url) if name.startswith("veloz_verify_")]

    offsite = tmp_path / "offsite"
    shutil.copytree(host.backup, offsite, symlinks=True)
    shutil.rmtree(host.wal)
    shutil.rmtree(host.config)
    done = host.run("full_restore.sh", "-y", "-s", str(offsite))
    assert done.returncode == 0, done.stderr
    assert "restore_postgres.sh -t full" in done.stderr
    with host.engine() as engine:
        assert engine.state() == before


def test_verify_catches_a_dump_whose_counts_differ(host):
    with host.engine() as engine:
        coid = engine.order("BUY", "0.01", "60000")["client_order_id"]
        engine.wait_final([coid])
        assert host.run("backup_all.sh").returncode == 0
    (dump,) = host.sets("postgres/full")
    info = dump / "info.json"
    info.write_text(re.sub(r'"projector_state" : \d+', '"projector_state" : 9', info.read_text()))
    subprocess.run(
        "sha256sum info.json veloz.dump > MANIFEST.sha256", shell=True, check=True, cwd=dump
    )
    done = host.run("verify_backup.sh", "-t")
    assert done.returncode == 5, done.stdout
    (failed,) = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    assert "test restore PostgreSQL" in failed
