"""PITR with backup_postgres.sh -t base and restore_postgres.sh -t pitr, on a private
cluster that archives its WAL as docs/operations/postgres-backup.md says: the engine
writes a first batch of orders, a base backup is taken, the time T noted, a second batch
written; the DR runbook's `restore_postgres.sh -t pitr -T "<T>"` brings back exactly the
first batch, and the engine started again re-projects the second from its journal.
Also what PITR refuses, and its usage errors."""

import fcntl
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_history_store import metric, place, runbook_psql
from tests.e2e.test_service_mode import wait_until_serving
from tests.integration.backup.host import run_script as run
from tests.support.postgres import PG_BIN, ArchivingCluster
from tests.support.processes import eventually, free_port, start_veloz, veloz_env

REPO = Path(__file__).resolve().parents[3]
BACKUP = REPO / "scripts" / "backup" / "backup_postgres.sh"
RESTORE = REPO / "scripts" / "backup" / "restore_postgres.sh"


def base_backup(cluster: ArchivingCluster) -> None:
    done = run(
        BACKUP, "-t", "base", backup_dir=cluster.backup_dir, VELOZ_DATABASE_URL=cluster.admin_url
    )
    assert done.returncode == 0, done.stderr


def restore_pitr(
    cluster: ArchivingCluster, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    settings = {
        "VELOZ_PGDATA": str(cluster.data),
        "VELOZ_PG_BIN": str(PG_BIN),
        "VELOZ_DATABASE_URL": cluster.url,
    }
    return run(RESTORE, "-t", "pitr", *args, backup_dir=cluster.backup_dir, **(settings | env))


def orders(cluster: ArchivingCluster) -> set[str]:
    return set(cluster.psql("SELECT client_order_id FROM orders", "veloz", "veloz").split())


def next_whole_second(cluster: ArchivingCluster) -> str:
    """T as the runbook writes it ("2026-02-23 11:55:00", UTC), after everything so far;
    returns once the server's clock has passed it."""
    target = cluster.psql(
        "SELECT to_char(date_trunc('second', now() AT TIME ZONE 'UTC') + interval '1 second',"
        " 'YYYY-MM-DD HH24:MI:SS')"
    ).strip()
    eventually(
        lambda: (
            cluster.psql(
                f"SELECT now() > '{target}+00'::timestamptz + interval '100 milliseconds'"
            ).strip()
            == "t"
        ),
        5,
        "the server's clock passed T",
    )
    return target


@pytest.mark.slow
def test_pitr_restores_exactly_the_first_batch_and_the_engine_reprojects_the_rest(
    tmp_path, archiving_cluster
):
    cluster = archiving_cluster
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = veloz_env(
        tmp_path / "wal", VELOZ_DATABASE_URL=cluster.url, VELOZ_STORE_SNAPSHOT_INTERVAL_S="3600"
    )

    def start_engine() -> subprocess.Popen[bytes]:
        process = start_veloz(
            ["engine", "--port", str(port), "--host", "127.0.0.1"],
            env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_serving(port, process)
        return process

    def stop_engine(process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0

    first = {f"first-{n}" for n in range(5)}
    second = {f"second-{n}" for n in range(7)}
    engine = start_engine()
    try:
        for coid in sorted(first):
            place(base, coid)
        eventually(lambda: metric(base, "veloz_store_lag_entries") == 0, 20, "first batch stored")
        assert orders(cluster) == first
        base_backup(cluster)
        target = next_whole_second(cluster)
        for coid in sorted(second):
            place(base, coid)
        eventually(lambda: metric(base, "veloz_store_lag_entries") == 0, 20, "second batch stored")
        assert orders(cluster) == first | second
    finally:
        stop_engine(engine)  # the runbook: systemctl stop veloz
    cluster.psql("SELECT pg_switch_wal()")

    done = restore_pitr(cluster, "-T", target)
    assert done.returncode == 0, done.stderr
    assert f"recovered to {target}+00" in done.stderr

    assert orders(cluster) == first
    assert cluster.psql("SELECT count(*) FROM fills", "veloz", "veloz").strip() == "5"
    # The DR runbook's check, as written.
    assert re.search(r"^\s+5$", runbook_psql(cluster, "SELECT count(*) FROM orders;"), re.M)
    assert cluster.psql("SELECT pg_is_in_recovery()").strip() == "f"
    assert "recovery_target" not in (cluster.data / "postgresql.auto.conf").read_text()
    assert not (cluster.data / "recovery.signal").exists()
    (aside,) = cluster.directory.glob("data.pre-pitr-*")
    assert (aside / "PG_VERSION").exists()  # the old data directory, moved aside

    # After a PITR the store is behind the journal: the projector resumes after the
    # restored projector_state and brings the second batch back from the journal.
    engine = start_engine()
    try:
        eventually(lambda: metric(base, "veloz_store_lag_entries") == 0, 30, "re-projected")
        assert orders(cluster) == first | second
    finally:
        stop_engine(engine)


def test_pitr_refuses_while_a_client_is_connected_unless_forced(archiving_cluster):
    cluster = archiving_cluster
    cluster.psql("CREATE TABLE marks (name text)", "veloz", "veloz")
    base_backup(cluster)
    cluster.psql("INSERT INTO marks VALUES ('kept')", "veloz", "veloz")
    session = subprocess.Popen(
        ["psql", cluster.url, "-X", "-q"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        eventually(
            lambda: (
                cluster.psql(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = 'veloz'"
                ).strip()
                == "1"
            ),
            10,
            "the client connected",
        )
        refused = restore_pitr(cluster)
        # --force disconnects it; and without VELOZ_PGDATA a superuser's URL finds the
        # data directory by asking the server.
        forced = restore_pitr(
            cluster, "--force", VELOZ_PGDATA="", VELOZ_DATABASE_URL=cluster.admin_url
        )
    finally:
        session.communicate("\\q\n", timeout=10)
    assert refused.returncode == 3, refused.stderr
    assert "veloz@veloz" in refused.stderr.splitlines()[-1]
    assert "--force" in refused.stderr.splitlines()[-1]

    assert forced.returncode == 0, forced.stderr
    assert f"data directory (from the server): {cluster.data}" in forced.stderr
    assert "--force: disconnecting veloz@veloz" in forced.stderr
    assert len(list(cluster.directory.glob("data.pre-pitr-*"))) == 1  # only the forced run
    assert cluster.psql("SELECT name FROM marks", "veloz", "veloz").split() == ["kept"]


def test_a_base_backup_fails_when_the_archiver_cannot_archive(archiving_cluster):
    cluster = archiving_cluster
    cluster.wal_archive.chmod(0o500)  # the server's OS user owns it but cannot write
    done = run(
        BACKUP,
        "-t",
        "base",
        backup_dir=cluster.backup_dir,
        VELOZ_DATABASE_URL=cluster.admin_url,
        VELOZ_PG_ARCHIVE_WAIT_S="2",
    )
    cluster.wal_archive.chmod(0o700)
    assert done.returncode == 1, done.stderr
    assert re.search("WAL archiving (is failing|failed)", done.stderr.splitlines()[-1])
    assert not list((cluster.backup_dir / "postgres" / "base").iterdir())  # nothing half-made


def fake_base_backup(backup_dir: Path, stamp: str, finished_ns: int) -> None:
    made = backup_dir / "postgres" / "base" / stamp
    made.mkdir(parents=True)
    (made / "base.tar.gz").write_bytes(b"")
    (made / "info.json").write_text(
        f'{{"kind" : "base", "finished_ns" : {finished_ns}, "server_version_num" : 150020}}\n'
    )
    subprocess.run(
        "sha256sum base.tar.gz info.json > MANIFEST.sha256", shell=True, cwd=made, check=True
    )


def test_no_base_backup_before_the_target_exits_1(tmp_path):
    (tmp_path / "postgres" / "wal_archive").mkdir(parents=True)
    target_ns = 1_771_847_700 * 10**9  # 2026-02-23 11:55:00 UTC
    fake_base_backup(tmp_path, "20260223T120000Z", target_ns + 5 * 60 * 10**9)
    done = run(
        RESTORE,
        "-t",
        "pitr",
        "-T",
        "2026-02-23 11:55:00",
        backup_dir=tmp_path,
        VELOZ_PGDATA=str(tmp_path / "data"),
    )
    assert done.returncode == 1, done.stderr
    assert "no complete base backup" in done.stderr.splitlines()[-1]
    assert "finished before 2026-02-23 11:55:00+00" in done.stderr
    # The same time as the deployment runbook writes it, and with a zone (12:55 in +01:00).
    for same in ("2026-02-23T11:55:00Z", "2026-02-23T12:55:00+01:00", "2026-02-23 12:55:00 +0100"):
        done = run(
            RESTORE,
            "-t",
            "pitr",
            "-T",
            same,
            backup_dir=tmp_path,
            VELOZ_PGDATA=str(tmp_path / "data"),
        )
        assert done.returncode == 1, done.stderr
        assert "finished before 2026-02-23 11:55:00+00" in done.stderr


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("2026-02-23", "is not a time like"),
        ("23/02/2026 11:55:00", "is not a time like"),
        ("2026-02-23 11:55", "is not a time like"),
        ("2026-02-30 11:55:00", "is not a valid time"),
        ("2026-02-23 25:00:00", "is not a valid time"),
        ("2099-01-01 00:00:00", "is in the future"),
    ],
)
def test_a_bad_target_time_exits_2(tmp_path, target, message):
    done = run(
        RESTORE,
        "-t",
        "pitr",
        "-T",
        target,
        backup_dir=tmp_path,
        VELOZ_PGDATA=str(tmp_path / "data"),
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr.splitlines()[-1]


def test_pitr_needs_the_data_directory(tmp_path):
    done = run(RESTORE, "-t", "pitr", "-T", "2026-02-23 11:55:00", backup_dir=tmp_path)
    assert done.returncode == 2
    assert "VELOZ_PGDATA is not set" in done.stderr.splitlines()[-1]


def test_pitr_refuses_a_backup_that_fails_its_checksums(tmp_path):
    (tmp_path / "postgres" / "wal_archive").mkdir(parents=True)
    fake_base_backup(tmp_path, "20260223T110000Z", 1_771_844_400 * 10**9)
    (tmp_path / "postgres" / "base" / "20260223T110000Z" / "base.tar.gz").write_bytes(b"x")
    done = run(
        RESTORE,
        "-t",
        "pitr",
        "-T",
        "2026-02-23 11:55:00",
        backup_dir=tmp_path,
        VELOZ_PGDATA=str(tmp_path / "data"),
    )
    assert done.returncode == 5, done.stderr
    assert "MANIFEST.sha256" in done.stderr.splitlines()[-1]
    assert not (tmp_path / "data").exists()


def test_a_second_restore_exits_4_while_one_runs(tmp_path):
    """restore_postgres.sh holds an flock on VELOZ_BACKUP_DIR/.restore_postgres.lock."""
    with (tmp_path / ".restore_postgres.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = run(
            RESTORE,
            "-t",
            "pitr",
            "-T",
            "2026-02-23 11:55:00",
            backup_dir=tmp_path,
            VELOZ_PGDATA=str(tmp_path / "data"),
        )
    assert done.returncode == 4, done.stderr
    assert "another restore_postgres is running" in done.stderr.splitlines()[-1]


def test_pitr_after_a_crash_uses_the_wal_the_archive_never_got(archiving_cluster):
    """An immediate stop (a crash) archives nothing more: the segment holding both rows
    exists only in the old pg_wal, which the restore copies into the new cluster."""
    cluster = archiving_cluster
    cluster.psql("CREATE TABLE marks (name text)", "veloz", "veloz")
    base_backup(cluster)
    cluster.psql("INSERT INTO marks VALUES ('before')", "veloz", "veloz")
    target = next_whole_second(cluster)
    cluster.psql("INSERT INTO marks VALUES ('after')", "veloz", "veloz")
    cluster._run("pg_ctl", "-D", str(cluster.data), "-m", "immediate", "-w", "stop")

    done = restore_pitr(cluster, "-T", target)
    assert done.returncode == 0, done.stderr
    assert "WAL files from the old pg_wal" in done.stderr
    assert cluster.psql("SELECT name FROM marks", "veloz", "veloz").split() == ["before"]


def test_archive_wal_copies_once_and_never_overwrites(tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    segment = tmp_path / "000000010000000000000001"
    segment.write_bytes(b"wal" * 1000)
    script = REPO / "scripts" / "backup" / "archive_wal.sh"

    def archive_wal(*args: str) -> subprocess.CompletedProcess[str]:
        return run(script, *args, backup_dir=tmp_path)

    assert archive_wal(str(segment), segment.name, str(archive)).returncode == 0
    assert (archive / segment.name).read_bytes() == segment.read_bytes()
    assert [p.name for p in archive.iterdir()] == [segment.name]  # no temporary left
    # PostgreSQL retrying the same segment: done already.
    assert archive_wal(str(segment), segment.name, str(archive)).returncode == 0
    # A different file under that name is an error, and the archived one stays.
    other = tmp_path / "other"
    other.write_bytes(b"different")
    done = archive_wal(str(other), segment.name, str(archive))
    assert done.returncode == 1
    assert "not overwritten" in done.stderr
    assert (archive / segment.name).read_bytes() == segment.read_bytes()
    assert archive_wal(str(segment), segment.name, str(tmp_path / "missing")).returncode == 1
    assert archive_wal(str(segment)).returncode == 2
