"""Backups to S3 against moto's server on a loopback port: backup_all.sh uploads each new
directory (manifest last) under the runbook's keys, `aws s3 ls --recursive` lists them,
incomplete sets are neither uploaded nor restored, verify_backup.sh checks the bucket,
and full_restore.sh -y -s s3://... restores from it."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.backup.host import VELOZ_BIN, Host

BUCKET = "veloz-backups"


@pytest.fixture
def host(tmp_path: Path, s3_server) -> Host:
    s3_server.create_bucket(BUCKET)
    return Host(tmp_path, extra=s3_server.env() | {"VELOZ_S3_BUCKET": f"s3://{BUCKET}/prod"})


def aws(host: Host, *args: str) -> subprocess.CompletedProcess[str]:
    cli = Path(sys.executable).parent / "aws"
    return subprocess.run(
        [str(cli), *args], env=host.env(), capture_output=True, text=True, timeout=60, check=False
    )


def veloz(host: Host, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VELOZ_BIN), *args],
        env=host.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_backup_all_uploads_what_the_runbook_lists(host):
    with host.engine() as engine:
        coid = engine.order("BUY", "0.01", "60000")["client_order_id"]
        engine.wait_final([coid])
        done = host.run("backup_all.sh")
    assert done.returncode == 0, done.stderr
    assert "testing" not in done.stderr  # no credential in the log
    listed = aws(host, "s3", "ls", f"s3://{BUCKET}/", "--recursive")
    assert listed.returncode == 0, listed.stderr
    keys = {line.split()[-1] for line in listed.stdout.splitlines()}
    for kind, files in (
        ("wal", {"orders_current.wal", "snapshot.json", "MANIFEST.sha256"}),
        ("config", {"veloz.env", "risk_limits.yaml", "tls/veloz.key", "MANIFEST.sha256"}),
        ("history", {"veloz.db", "info.json", "MANIFEST.sha256"}),
    ):
        (local,) = host.sets(kind)
        assert {f"prod/{kind}/{local.name}/{name}" for name in files} <= keys, kind
    assert not any("latest" in key for key in keys)
    verified = host.run("verify_backup.sh")
    assert verified.returncode == 0, verified.stdout
    assert verified.stdout.count(f"OK   S3 s3://{BUCKET}/prod: newest") == 3
    elsewhere = host.run("verify_backup.sh", VELOZ_S3_BUCKET=f"s3://{BUCKET}/other")
    assert elsewhere.returncode == 5
    assert f"FAIL S3 s3://{BUCKET}/other: no complete journal backup" in elsewhere.stdout


def test_an_incomplete_set_is_neither_uploaded_nor_listed(host):
    partial = host.backup / "wal" / "20261129T000000Z"
    partial.mkdir(parents=True)
    (partial / "orders_current.wal").write_bytes(b"x")
    refused = veloz(host, "backup", "upload", str(partial))
    assert refused.returncode == 2 and "incomplete" in refused.stderr
    # A set whose manifest never arrived (an upload cut short) is not complete in S3.
    put = aws(
        host,
        "s3",
        "cp",
        str(partial / "orders_current.wal"),
        f"s3://{BUCKET}/prod/wal/20261129T000000Z/",
    )
    assert put.returncode == 0, put.stderr
    listed = veloz(host, "backup", "list")
    assert listed.returncode == 0 and listed.stdout == ""
    done = host.run("full_restore.sh", "-y", "-s", f"s3://{BUCKET}/prod")
    assert done.returncode == 2 and "no complete journal backup" in done.stderr


def test_a_set_outside_the_backup_root_and_bad_buckets_are_usage_errors(host, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "MANIFEST.sha256").write_text("")
    done = veloz(host, "backup", "upload", str(outside))
    assert done.returncode == 2 and "not under the backup root" in done.stderr
    bad = veloz(host, "backup", "list", "--bucket", "veloz-backups")
    assert bad.returncode == 2 and "s3://" in bad.stderr


def test_an_unreachable_store_fails_the_upload_step(host):
    host.extra["VELOZ_S3_ENDPOINT_URL"] = "http://127.0.0.1:9"  # nothing listens
    host.wal.mkdir(parents=True)
    done = host.run("backup_wal.sh")
    assert done.returncode == 1
    assert "upload of" in done.stderr.splitlines()[-1]
    assert host.extra["AWS_SECRET_ACCESS_KEY"] not in done.stderr


def test_full_restore_from_s3(host):
    with host.engine() as engine:
        coids = [engine.order("BUY", "0.01", "60000")["client_order_id"] for _ in range(3)]
        engine.wait_final(coids)
        before = engine.state()
    assert host.run("backup_all.sh").returncode == 0
    # The site is lost: journal, store, configuration and local backups.
    for path in (host.wal, host.config, host.backup):
        subprocess.run(["rm", "-rf", str(path)], check=True)
    host.db.unlink()
    done = host.run("full_restore.sh", "-y", "-s", f"s3://{BUCKET}/prod")
    assert done.returncode == 0, done.stderr
    assert "start the engine" in done.stderr.splitlines()[-1]
    assert (host.config / "tls" / "veloz.key").exists()
    with host.engine() as engine:
        assert engine.state() == before
