"""PostgreSQL for tests: a fresh database on the local server, or a throwaway cluster of
our own (initdb + pg_ctl on a free port in a temp dir) that a test may stop and start.

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
