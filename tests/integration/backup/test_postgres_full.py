"""backup_postgres.sh -t full and restore_postgres.sh -t full against the local PostgreSQL
(scratch databases with unique names, dropped afterwards): the round trip keeps every
row exactly, a restore replaces the target and keeps the old database aside, refuses
while someone is connected, and refuses a backup that fails its checksums. Also the
usage errors and exit codes both scripts document."""

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.backup.host import run_script as run
from tests.support.postgres import LOCAL_ADMIN_URL, unavailable
from tests.support.processes import free_port

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[3]
BACKUP = REPO / "scripts" / "backup" / "backup_postgres.sh"
RESTORE = REPO / "scripts" / "backup" / "restore_postgres.sh"
PASSWORD = "n0t-Shown-anywhere"

# Three orders, two fills and a user, with decimals whose exact text must survive.
ROWS = """
INSERT INTO orders (client_order_id, venue_order_id, symbol, side, type, tif, qty, price,
    status, executed_qty, cum_quote, avg_price, fee, fee_asset, reason, strategy_id,
    reference_price, created_at, updated_at, created_ns, updated_ns, journal_seq)
SELECT 'order-' || n, 'v' || n, 'BTCUSDT', 'BUY', 'LIMIT', 'GTC', 0.00010000, 50000.01,
    'FILLED', 0.00010000, 5.000001, 50000.01, 0.0000001, 'BTC', '', NULL, NULL,
    to_timestamp(1795900000 + n), to_timestamp(1795900000 + n),
    (1795900000 + n) * 1000000000::bigint + 123456789, (1795900000 + n) * 1000000000::bigint,
    n
FROM generate_series(1, 3) AS n;
INSERT INTO fills (trade_id, client_order_id, symbol, side, qty, price, fee, fee_asset,
    liquidity, ts, ts_ns, journal_seq)
SELECT 't' || n, 'order-' || n, 'BTCUSDT', 'BUY', 0.00010000, 50000.01, 0.0000001, 'BTC',
    'TAKER', to_timestamp(1795900000 + n), (1795900000 + n) * 1000000000::bigint, 10 + n
FROM generate_series(1, 2) AS n;
INSERT INTO users (user_id, role, password_hash, disabled, created_at, updated_at,
    created_ns, updated_ns)
VALUES ('admin', 'admin', 'scrypt$not-a-real-hash', false, now(), now(), 1, 1);
UPDATE projector_state SET last_seq = 12;
"""


def url_for(name: str, password: str | None = None) -> str:
    base, _, _ = LOCAL_ADMIN_URL.rpartition("/")
    if password:
        scheme, _, rest = base.partition("://")
        user, _, host = rest.partition("@")
        base = f"{scheme}://{user}:{password}@{host}"
    return f"{base}/{name}"


def psql(sql: str, database: str = "postgres") -> str:
    done = subprocess.run(
        ["psql", url_for(database), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def databases(prefix: str) -> set[str]:
    return set(psql(f"SELECT datname FROM pg_database WHERE datname LIKE '{prefix}%'").split())


@pytest.fixture
def prefix() -> Iterator[str]:
    """A unique database-name prefix; every database starting with it is dropped after."""
    name = f"veloz_bk_{uuid.uuid4().hex[:10]}"
    try:
        psql("SELECT 1")
    except (OSError, AssertionError) as exc:
        unavailable(f"no PostgreSQL at {LOCAL_ADMIN_URL}: {exc}")
    yield name
    for database in databases(name):
        psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture
def source(prefix: str) -> str:
    """A database with VeloZ's schema (migrated by `veloz db migrate`) and some rows."""
    name = f"{prefix}_src"
    psql(f'CREATE DATABASE "{name}"')
    migrate = subprocess.run(
        [sys.executable, "-m", "veloz", "db", "migrate", "--url", url_for(name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr
    psql(ROWS, name)
    return name


def snapshot(database: str) -> dict[str, str]:
    """Every row of the tables the round trip must keep, as PostgreSQL prints them."""
    return {
        table: psql(f"SELECT * FROM {table} ORDER BY 1", database)
        for table in ("orders", "fills", "users", "projector_state", "schema_migrations")
    }


def backup_full(source: str, backup_dir: Path) -> Path:
    done = run(
        BACKUP, "-t", "full", backup_dir=backup_dir, VELOZ_DATABASE_URL=url_for(source, PASSWORD)
    )
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    (made,) = (backup_dir / "postgres" / "full").iterdir()
    assert done.stdout == f"{made}\n"  # the new backup's directory, for callers
    return made


def test_full_backup_writes_the_dump_info_and_a_manifest_without_the_password(tmp_path, source):
    made = backup_full(source, tmp_path)
    assert sorted(p.name for p in made.iterdir()) == ["MANIFEST.sha256", "info.json", "veloz.dump"]
    lines = (made / "MANIFEST.sha256").read_text().splitlines()
    manifest = {name: digest for digest, name in (line.split("  ", 1) for line in lines)}
    assert set(manifest) == {"info.json", "veloz.dump"}
    for name, digest in manifest.items():
        assert hashlib.sha256((made / name).read_bytes()).hexdigest() == digest
    assert (made / "veloz.dump").read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format

    info_text = (made / "info.json").read_text()
    assert PASSWORD not in info_text
    info = json.loads(info_text)
    assert info["kind"] == "full"
    assert info["database"] == source
    assert info["server_version_num"] >= 150000
    assert info["dump_bytes"] == (made / "veloz.dump").stat().st_size
    assert info["counts"]["orders"] == 3
    assert info["counts"]["fills"] == 2
    assert info["counts"]["users"] == 1
    assert info["projector_last_seq"] == 12
    assert info["url"].endswith(f":***@{url_for(source).split('@', 1)[1]}")


def test_full_round_trip_into_a_missing_database_keeps_every_row_exactly(tmp_path, prefix, source):
    made = backup_full(source, tmp_path)
    target = f"{prefix}_verify_{os.getpid()}"
    done = run(
        RESTORE,
        "-t",
        "full",
        "-f",
        str(made),
        "--url",
        url_for(target, PASSWORD),
        backup_dir=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert snapshot(target) == snapshot(source)
    assert psql("SELECT qty, price, cum_quote FROM orders LIMIT 1", target).strip() == (
        "0.00010000|50000.01|5.000001"
    )
    # Only the restored database is left: no scratch copy, nothing moved aside.
    assert databases(prefix) == {source, target}


def test_restore_replaces_the_database_and_keeps_the_old_one_aside(tmp_path, prefix, source):
    before = snapshot(source)
    backup_full(source, tmp_path)
    psql("DELETE FROM fills; UPDATE orders SET status = 'CANCELLED'", source)
    psql("CREATE TABLE added_after_the_backup (n int)", source)

    done = run(RESTORE, "-t", "full", backup_dir=tmp_path, VELOZ_DATABASE_URL=url_for(source))
    assert done.returncode == 0, done.stderr
    assert snapshot(source) == before
    assert psql("SELECT to_regclass('added_after_the_backup')", source).strip() == ""
    (aside,) = databases(prefix) - {source}
    assert aside.startswith(f"{source}_pre_restore_")
    assert psql("SELECT count(*) FROM fills", aside).strip() == "0"  # the old contents, kept
    assert aside in done.stderr


def test_restore_refuses_while_another_session_is_connected(tmp_path, prefix, source):
    backup_full(source, tmp_path)
    psql("DELETE FROM orders", source)
    session = subprocess.Popen(
        ["psql", url_for(source), "-X", "-q"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert session.stdin is not None
        session.stdin.write("SELECT 1;\n")
        session.stdin.flush()
        for _ in range(100):
            if psql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{source}'") != "0\n":
                break
        done = run(RESTORE, "-t", "full", backup_dir=tmp_path, VELOZ_DATABASE_URL=url_for(source))
    finally:
        session.communicate("\\q\n", timeout=10)
    assert done.returncode == 3, done.stderr
    assert "in use by" in done.stderr
    assert psql("SELECT count(*) FROM orders", source).strip() == "0"  # untouched
    assert databases(prefix) == {source}  # the scratch copy is gone


def test_restore_refuses_a_backup_that_fails_its_checksums(tmp_path, prefix, source):
    made = backup_full(source, tmp_path)
    dump = made / "veloz.dump"
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    target = f"{prefix}_corrupt"
    done = run(
        RESTORE, "-t", "full", "-f", str(made), "--url", url_for(target), backup_dir=tmp_path
    )
    assert done.returncode == 5, done.stderr
    assert "MANIFEST.sha256" in done.stderr.splitlines()[-1]
    assert databases(prefix) == {source}


def test_an_incomplete_backup_is_never_restored(tmp_path, prefix, source):
    made = backup_full(source, tmp_path)
    (made / "MANIFEST.sha256").unlink()  # as if the backup had died before finishing
    done = run(RESTORE, "-t", "full", "--url", url_for(f"{prefix}_x"), backup_dir=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "no complete backup" in done.stderr


def test_base_backup_is_refused_when_the_server_does_not_archive_wal(tmp_path, source):
    if psql("SHOW archive_mode").strip() != "off":
        pytest.skip("the local server archives WAL; the PITR tests cover base backups")
    done = run(BACKUP, "-t", "base", backup_dir=tmp_path, VELOZ_DATABASE_URL=url_for(source))
    assert done.returncode == 2, done.stderr
    assert "archive_mode is off" in done.stderr.splitlines()[-1]
    assert not any((tmp_path / "postgres").glob("base/*"))


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        (BACKUP, ["-t", "incremental"], "-t must be full or base"),
        (BACKUP, ["--bogus"], "unknown argument"),
        (RESTORE, [], "-t full or -t pitr is required"),
        (RESTORE, ["-t", "dump"], "-t must be full or pitr"),
        (RESTORE, ["-t", "full", "-T", "2026-02-23 11:55:00"], "-T is for -t pitr"),
    ],
)
def test_bad_usage_exits_2_with_one_line(tmp_path, script, args, message):
    done = run(script, *args, backup_dir=tmp_path, VELOZ_DATABASE_URL=url_for("x"))
    assert done.returncode == 2
    assert message in done.stderr.splitlines()[-1]


def test_a_url_that_is_not_postgresql_is_refused_without_showing_its_password(tmp_path):
    for script in (BACKUP, RESTORE):
        done = run(
            script,
            *(["-t", "full"] if script == RESTORE else []),
            backup_dir=tmp_path,
            VELOZ_DATABASE_URL=f"mysql://u:{PASSWORD}@h/db",
        )
        assert done.returncode == 2, done.stderr
        assert "not a PostgreSQL URL" in done.stderr
        assert PASSWORD not in done.stderr


def test_missing_postgresql_tools_exit_2_naming_the_package(tmp_path, source):
    """A PATH with everything /usr/bin and /bin have except the PostgreSQL tools."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in ("/usr/bin", "/bin"):
        for tool in Path(directory).iterdir():
            if tool.name.startswith(("pg_", "psql")) or (bin_dir / tool.name).exists():
                continue
            (bin_dir / tool.name).symlink_to(tool)
    backup_full(source, tmp_path / "made")
    made = next((tmp_path / "made" / "postgres" / "full").iterdir())
    for script, args in (
        (BACKUP, ["-t", "full"]),
        (RESTORE, ["-t", "full", "-f", str(made)]),
    ):
        done = run(
            script,
            *args,
            backup_dir=tmp_path,
            PATH=str(bin_dir),
            VELOZ_DATABASE_URL=url_for(source),
        )
        assert done.returncode == 2, done.stderr
        last = done.stderr.splitlines()[-1]
        assert "not found" in last and "postgresql-client" in last


def test_an_unreachable_server_exits_1_naming_it_without_the_password(tmp_path, source):
    made = backup_full(source, tmp_path)
    url = f"postgresql://veloz:{PASSWORD}@127.0.0.1:{free_port()}/veloz"
    done = run(BACKUP, "-t", "full", backup_dir=tmp_path / "other", VELOZ_DATABASE_URL=url)
    assert done.returncode == 1, done.stderr
    assert "cannot connect to postgresql://veloz:***@127.0.0.1:" in done.stderr.splitlines()[-1]
    assert PASSWORD not in done.stderr
    done = run(RESTORE, "-t", "full", "-f", str(made), "--url", url, backup_dir=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "cannot connect to the server of" in done.stderr.splitlines()[-1]
    assert PASSWORD not in done.stderr
