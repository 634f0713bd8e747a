"""PostgreSQL for tests: a fresh database on the local server, or a throwaway cluster of
our own (initdb + pg_ctl on a free port in a temp dir) that a test may stop and start,
optionally archiving its WAL as docs/operations/postgres-backup.md sets a server up for
point-in-time recovery.

Outside CI a missing server skips the test; in CI (`CI=true`) it fails: the CI machine
has PostgreSQL, and a skip there would hide a broken store."""

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import free_port

REPO = Path(__file__).resolve().parents[2]
BACKUP_SCRIPTS = REPO / "scripts" / "backup"

LOCAL_ADMIN_URL = os.environ.get(
    "VELOZ_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PG_BIN = Path(os.environ.get("VELOZ_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(reason)


def _with_database(admin_url: str, name: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def _local_psql(sql: str) -> None:
    subprocess.run(
        ["psql", LOCAL_ADMIN_URL, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
        check=True,
        capture_output=True,
        timeout=30,
    )


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A database of its own on the local server, dropped afterwards. (Synchronous, so
    async fixtures can ask for it by name.)"""
    name = f"veloz_test_{uuid.uuid4().hex[:12]}"
    try:
        _local_psql(f'CREATE DATABASE "{name}"')
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", b"") or str(exc).encode()
        unavailable(f"no PostgreSQL at {LOCAL_ADMIN_URL}: {detail.decode(errors='replace')}")
    yield _with_database(LOCAL_ADMIN_URL, name)
    _local_psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Cluster:
    """A PostgreSQL cluster in `directory`, run as the `postgres` user when we are root
    (initdb refuses root). Trust auth, loopback only."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.data = directory / "data"
        self.log = directory / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql://veloz@127.0.0.1:{self.port}/veloz"

    def _run(self, *args: str) -> None:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def psql(self, sql: str, user: str = "postgres", database: str = "postgres") -> str:
        completed = subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                user,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return completed.stdout

    def create_role_and_database(self) -> None:
        """The runbooks' `psql -U veloz` connects as `veloz` to the database `veloz`."""
        self.psql("CREATE ROLE veloz LOGIN")
        self.psql("CREATE DATABASE veloz OWNER veloz")


@pytest.fixture
def pg_cluster() -> Iterator[Cluster]:
    """A throwaway cluster with a `veloz` role and database, removed afterwards."""
    if not (PG_BIN / "initdb").exists():
        unavailable(f"no initdb in {PG_BIN}")
    # Not under pytest's tmp dir: that is private to root, and the server runs as postgres.
    directory = Path(tempfile.mkdtemp(prefix="veloz-pg-"))
    cluster = Cluster(directory, free_port())
    cluster.init()
    cluster.start()
    try:
        cluster.create_role_and_database()
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # stopped by the test
            cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)


class ArchivingCluster(Cluster):
    """wal_level replica, archive_mode on, archive_command = archive_wal.sh into the backup
    directory's postgres/wal_archive. Everything the server needs (port, socket directory,
    archiving) is in its postgresql.conf, so restore_postgres.sh can stop and start it with
    a plain `pg_ctl -D`, as it would a real one."""

    def __init__(self, directory: Path, port: int, backup_dir: Path) -> None:
        super().__init__(directory, port)
        self.backup_dir = backup_dir
        self.wal_archive = backup_dir / "postgres" / "wal_archive"

    @property
    def admin_url(self) -> str:
        """The superuser: a base backup needs the REPLICATION attribute."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/veloz"

    def init(self) -> None:
        super().init()
        self.wal_archive.mkdir(parents=True)
        # The server's OS user reaches the archive through the (root-owned) backup dir.
        for directory in (self.backup_dir, self.backup_dir / "postgres"):
            directory.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(self.wal_archive, "postgres", "postgres")
        settings = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.directory}'",
            "fsync": "off",
            "wal_level": "replica",
            "archive_mode": "on",
            "archive_command": (f"'{BACKUP_SCRIPTS / 'archive_wal.sh'} %p %f {self.wal_archive}'"),
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# tests/support/postgres.py ArchivingCluster\n")
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "start")

    def running(self) -> bool:
        command = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status"]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        status = subprocess.run(command, check=False, capture_output=True, timeout=30)
        return status.returncode == 0


@pytest.fixture
def archiving_cluster() -> Iterator[ArchivingCluster]:
    """A cluster archiving its WAL into a backup directory of its own, with VeloZ's
    `veloz` role and database; stopped and removed afterwards (with whatever data
    directories a restore moved aside)."""
    if not (PG_BIN / "initdb").exists():
        unavailable(f"no initdb in {PG_BIN}")
    # Not under pytest's tmp dir: that is private to root, and the server runs as postgres.
    directory = Path(tempfile.mkdtemp(prefix="veloz-pitr-"))
    backup_dir = Path(tempfile.mkdtemp(prefix="veloz-pitr-backup-"))
    cluster = ArchivingCluster(directory, free_port(), backup_dir)
    try:
        cluster.init()
        cluster.start()
        cluster.create_role_and_database()
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            if cluster.running():
                cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)
        shutil.rmtree(backup_dir, ignore_errors=True)
