"""Every backup script of helper A: --help is its leading comment, a bad flag or setting
is exit 2 with one line, a second run while one holds the script's lock is exit 4, and
the scripts pass shellcheck."""

import fcntl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.backup.host import SCRIPTS, Host
from tests.support.tools import tool

SCRIPT_NAMES = [
    "backup_all.sh",
    "backup_wal.sh",
    "backup_config.sh",
    "verify_backup.sh",
    "restore_wal.sh",
    "full_restore.sh",
]


@pytest.fixture
def host(tmp_path: Path) -> Host:
    host = Host(tmp_path)
    host.wal.mkdir(parents=True)
    return host


@pytest.mark.parametrize("script", SCRIPT_NAMES)
def test_help_is_the_leading_comment(host, script):
    done = host.run(script, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(script.removesuffix(".sh")), done.stdout[:200]
    assert "Exit codes:" in done.stdout and "Usage:" in done.stdout
    assert "set -euo pipefail" not in done.stdout  # only the comment block


@pytest.mark.parametrize("script", SCRIPT_NAMES)
def test_an_unknown_flag_is_a_usage_error(host, script):
    done = host.run(script, "--frobnicate")
    assert done.returncode == 2, done.stderr
    assert "unknown" in done.stderr and "--frobnicate" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("script", "args", "setting", "said"),
    [
        ("backup_wal.sh", [], {"VELOZ_WAL_DIR": "/nonexistent/wal"}, "no journal directory"),
        ("backup_wal.sh", [], {"VELOZ_BACKUP_KEEP_WAL": "0"}, "VELOZ_BACKUP_KEEP_WAL"),
        ("backup_config.sh", [], {"VELOZ_CONFIG_DIR": "/nonexistent/etc"}, "no configuration"),
        ("backup_all.sh", [], {"VELOZ_DATABASE_URL": "mysql://x"}, "VELOZ_DATABASE_URL"),
        ("backup_all.sh", [], {"VELOZ_BIN": "/nonexistent/veloz"}, "no veloz at"),
        ("verify_backup.sh", ["-r"], {}, "-r needs a file"),
        ("verify_backup.sh", [], {"VELOZ_VERIFY_MAX_AGE_WAL": "soon"}, "number of seconds"),
        ("restore_wal.sh", [], {}, "no complete journal backup"),
        ("restore_wal.sh", ["a", "b"], {}, "one BACKUP at most"),
        ("restore_wal.sh", ["/nonexistent/backup"], {}, "no journal backup at"),
        ("full_restore.sh", ["-y"], {}, "-s SOURCE is required"),
        ("full_restore.sh", ["-y", "-s", "/nonexistent"], {}, "no backup directory"),
    ],
)
def test_bad_settings_are_refused_with_one_line(host, script, args, setting, said):
    done = host.run(script, *args, **setting)
    assert done.returncode == 2, done.stderr
    assert said in done.stderr
    assert "mysql://x" not in done.stderr or script == "backup_all.sh"


def test_full_restore_without_yes_and_without_a_terminal_refuses(host):
    done = host.run("full_restore.sh", "-s", str(host.backup))
    assert done.returncode == 2
    assert "not confirmed" in done.stderr
    assert (host.config / "veloz.env").exists()  # nothing touched


@pytest.fixture
def held_lock(host: Host, request: pytest.FixtureRequest) -> Iterator[str]:
    script: str = request.param
    path = host.backup / f".{script.removesuffix('.sh')}.lock"
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield script


LOCK_ARGS = {
    "backup_all.sh": [],
    "backup_wal.sh": [],
    "backup_config.sh": [],
    "verify_backup.sh": [],
    "restore_wal.sh": ["BACKUP"],
    "full_restore.sh": ["-y", "-s", "BACKUPROOT"],
}


@pytest.mark.parametrize("held_lock", SCRIPT_NAMES, indirect=True)
def test_a_second_run_is_refused_while_the_first_holds_the_lock(host, held_lock):
    some_backup = host.backup / "wal" / "20260101T000000Z"
    some_backup.mkdir(parents=True)
    args = [
        {"BACKUP": str(some_backup), "BACKUPROOT": str(host.backup)}.get(a, a)
        for a in LOCK_ARGS[held_lock]
    ]
    done = host.run(held_lock, *args)
    assert done.returncode == 4, done.stderr
    assert f"another {held_lock.removesuffix('.sh')} is running" in done.stderr


@pytest.mark.parametrize("script", [*SCRIPT_NAMES])
def test_shellcheck_is_clean(script):
    shellcheck = tool("shellcheck", "shellcheck")
    done = subprocess.run(
        [shellcheck, "-x", f"scripts/backup/{script}"],
        cwd=SCRIPTS.parents[1],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout


def test_crontab_example_has_the_runbook_cadence():
    lines = [
        line.split()
        for line in (SCRIPTS / "crontab.example").read_text().splitlines()
        if line and not line.startswith("#") and "=" not in line.split()[0]
    ]
    schedule = {Path(fields[5]).name: fields[:5] for fields in lines}
    assert schedule["backup_wal.sh"] == ["*/5", "*", "*", "*", "*"]
    assert schedule["backup_config.sh"][1] == "*/6"
    assert schedule["backup_all.sh"][1:] == ["2", "*", "*", "*"]  # daily
    assert schedule["verify_backup.sh"][2:] == ["*", "*", "*"]
    for fields in lines:
        assert (SCRIPTS / Path(fields[5]).name).exists(), fields[5]
