"""`veloz config check`: the verdict `veloz engine` would reach on these settings, without
starting anything."""

import json
import subprocess
import sys

from tests.support.processes import veloz_env


def check(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "veloz", "config", "check", *args],
        env=veloz_env(tmp_path / "wal", **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_good_settings_show_what_is_in_force_with_secrets_hidden(tmp_path):
    env_file = tmp_path / "veloz.env"
    env_file.write_text("VELOZ_PRESET=release\nVELOZ_JWT_SECRET=" + "x7Qp2Lm9Zr4Tw8Kd" * 3 + "\n")
    done = check(tmp_path, "--env-file", str(env_file))
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["preset"] == "release" and shown["auth_enabled"] is True
    assert shown["jwt_secret"] == "***" and "x7Qp2Lm9" not in done.stdout + done.stderr
    assert done.stderr.strip().endswith("settings OK")


def test_a_bad_setting_is_one_line_and_exit_2(tmp_path):
    done = check(tmp_path, "-q", VELOZ_PORT="abc")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        line for line in done.stderr.strip().splitlines() if line.startswith("veloz: VELOZ_PORT")
    ]


def test_release_without_a_jwt_secret_is_refused_as_the_engine_would(tmp_path):
    env_file = tmp_path / "veloz.env"
    env_file.write_text("VELOZ_PRESET=release\n")
    done = check(tmp_path, "-q", "--env-file", str(env_file))
    assert done.returncode == 2 and "VELOZ_JWT_SECRET" in done.stderr


def test_a_missing_env_file_is_named(tmp_path):
    done = check(tmp_path, "--env-file", str(tmp_path / "nope.env"))
    assert done.returncode == 2 and "no file at" in done.stderr


def test_a_misspelt_variable_is_named_with_what_was_meant(tmp_path):
    env_file = tmp_path / "veloz.env"
    env_file.write_text("VELOZ_WAL_SINK=false\n")
    done = check(
        tmp_path,
        "-q",
        "--env-file",
        str(env_file),
        VELOZ_PROT="9090",
        # The tools' own variables are not the engine's settings, and not typos either.
        VELOZ_BACKUP_DIR=str(tmp_path),
        VELOZ_STAGING_URL="http://127.0.0.1:1",
        VELOZ_PG_SERVICE="postgresql@15-main",
    )
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "warning" in line]
    assert warnings == [
        "veloz: warning: VELOZ_PROT is not a setting and is ignored (did you mean VELOZ_PORT?)",
        "veloz: warning: VELOZ_WAL_SINK is not a setting and is ignored"
        " (did you mean VELOZ_WAL_SYNC?)",
    ]
