"""A private PostgreSQL cluster set up as docs/operations/postgres-backup.md tells an
operator to: wal_level replica, archive_mode on, archive_command = archive_wal.sh into
the backup directory's postgres/wal_archive. Everything the server needs (port, socket
directory, archiving) is in its postgresql.conf, so restore_postgres.sh can stop and
start it with a plain `pg_ctl -D`, as it would a real one."""

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import PG_BIN, Cluster, unavailable
from tests.support.processes import free_port

REPO = Path(__file__).resolve().parents[3]
BACKUP_SCRIPTS = REPO / "scripts" / "backup"


class ArchivingCluster(Cluster):
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
            conf.write("\n# tests/integration/backup/pg_cluster.py\n")
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
