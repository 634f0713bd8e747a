"""scripts/install.sh into scratch roots (`--root`): the layout and modes it documents,
idempotent re-runs, an operator's edits kept (the release's version beside them as .new),
and one real install whose venv runs `veloz` and whose env file and generated secrets
start a release-preset engine that takes the admin's login."""

import fcntl
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import free_port
from tests.support.tools import tool

CHECKOUT = Path(__file__).resolve().parents[3]
ITEMS = (
    *("src", "scripts", "config", "docs", "deploy"),
    *("pyproject.toml", "requirements.lock", "README.md", "CHANGELOG.md"),
)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An unpacked release: this checkout copied once, so that every install in the
    module sees the same code while the checkout may change."""
    copy = tmp_path_factory.mktemp("release")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for item in ITEMS:
        if (CHECKOUT / item).is_dir():
            shutil.copytree(CHECKOUT / item, copy / item, ignore=ignore, symlinks=True)
        elif (CHECKOUT / item).exists():
            shutil.copy2(CHECKOUT / item, copy / item)
    return copy


def install(release: Path, root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VELOZ_")}
    return subprocess.run(
        [str(release / "scripts/install.sh"), "--root", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
        env=clean | env,
        timeout=900,
    )


def installed(release: Path, root: Path, *args: str, **env: str) -> str:
    done = install(release, root, *args, **env)
    assert done.returncode == 0, done.stderr
    return done.stderr


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every file and directory under root (outside the venv): mode, and files' size and mtime."""
    found = {}
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if relative.parts[:3] == ("opt", "veloz", ".venv"):
            continue
        info = path.lstat()
        if path.is_dir() and not path.is_symlink():  # a directory's mtime: only its entries
            found[str(relative)] = (info.st_mode, 0, 0)
        else:
            found[str(relative)] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return found


def env_lines(path: Path) -> dict[str, str]:
    """The active VAR=value lines, as systemd's EnvironmentFile= reads them."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


# Help and usage --------------------------------------------------------------------------


INSTALL = CHECKOUT / "scripts" / "install.sh"


def test_help_documents_options_and_exit_codes():
    done = subprocess.run([str(INSTALL), "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0
    for words in ("--root DIR", "--no-venv", "--python PATH", "0 installed", "3 refused"):
        assert words in done.stdout
    assert "set -euo pipefail" in INSTALL.read_text()


def test_bad_usage_and_a_python_too_old_exit_2(release, tmp_path):
    done = install(release, tmp_path / "root", "--frobnicate")
    assert done.returncode == 2 and "unknown option: --frobnicate" in done.stderr
    done = install(release, tmp_path / "root", "--python", "/bin/false")
    assert done.returncode == 2 and "Python 3.11 or 3.12 is required" in done.stderr
    assert not (tmp_path / "root" / "opt" / "veloz" / "src").exists()


def test_shellcheck_is_clean():
    shellcheck = tool("shellcheck", "shellcheck")
    done = subprocess.run(
        [shellcheck, "-x", str(INSTALL)], capture_output=True, text=True, check=False, cwd=CHECKOUT
    )
    assert done.returncode == 0, done.stdout


# Layout without a venv (fast) --------------------------------------------------------------


def test_layout_modes_and_files_as_documented(release, tmp_path):
    root = tmp_path / "root"
    log = installed(release, root, "--no-venv")
    # One line per step.
    for step in ("python:", "user:", "directories:", "code:", "venv:", "config:", "secrets:"):
        assert f"install: {step}" in log
    assert mode(root / "opt/veloz") == 0o755
    for directory in ("etc/veloz", "etc/veloz/tls", "var/lib/veloz", "var/lib/veloz/wal"):
        assert mode(root / directory) == 0o750, directory
    assert mode(root / "var/log/veloz") == 0o750
    assert mode(root / "backup") == 0o750
    # The code, with the scripts the runbooks call by /opt/veloz paths.
    home = root / "opt/veloz"
    assert (home / "src/veloz/__init__.py").read_bytes() == (
        release / "src/veloz/__init__.py"
    ).read_bytes()
    for script in ("scripts/backup/lib.sh", "scripts/validate_deployment.sh", "scripts/install.sh"):
        assert mode(home / script) & 0o111 or script.endswith("lib.sh"), script
        assert (home / script).read_bytes() == (release / script).read_bytes()
    assert not list(home.rglob("__pycache__")) and not list(home.rglob("*.egg-info"))
    assert (home / "requirements.lock").read_bytes() == (release / "requirements.lock").read_bytes()
    # The release's own files, as shipped.
    assert (root / "etc/systemd/system/veloz.service").read_bytes() == (
        release / "deploy/systemd/veloz.service"
    ).read_bytes()
    assert (root / "etc/logrotate.d/veloz").read_bytes() == (
        release / "deploy/logrotate/veloz"
    ).read_bytes()
    assert mode(root / "etc/systemd/system/veloz.service") == 0o644
    assert mode(root / "etc/logrotate.d/veloz") == 0o644
    assert os.readlink(root / "usr/local/bin/veloz") == "/opt/veloz/.venv/bin/veloz"
    assert not (root / "etc/nginx").exists()
    # Configuration: readable by the service's group only.
    for name in ("veloz.env", "risk_limits.yaml", "jwt_secret", "admin_password"):
        assert mode(root / "etc/veloz" / name) == 0o640, name
    assert (root / "etc/veloz/risk_limits.yaml").read_bytes() == (
        release / "config/risk_limits.yaml"
    ).read_bytes()
    env = env_lines(root / "etc/veloz/veloz.env")
    assert env == {
        "VELOZ_PRESET": "release",
        "VELOZ_WAL_DIR": "/var/lib/veloz/wal",
        "VELOZ_DATABASE_URL": "sqlite:////var/lib/veloz/veloz.db",
        "VELOZ_RISK_LIMITS_FILE": "/etc/veloz/risk_limits.yaml",
        "VELOZ_BACKUP_DIR": "/backup",
        # journalctl -u veloz and /var/log/veloz/*.log both (the runbooks read both).
        "VELOZ_LOG_DIR": "/var/log/veloz",
        "VELOZ_JWT_SECRET_FILE": "/etc/veloz/jwt_secret",
        "VELOZ_ADMIN_PASSWORD_FILE": "/etc/veloz/admin_password",
    }
    # Random secrets, made once and never shown.
    secret = (root / "etc/veloz/jwt_secret").read_text()
    password = (root / "etc/veloz/admin_password").read_text()
    assert len(secret) == 64 and int(secret, 16) and secret != password
    assert secret not in log and password not in log


def test_the_user_is_recorded_for_systemd_sysusers(release, tmp_path):
    root = tmp_path / "root"
    installed(release, root, "--no-venv")
    record = (root / "usr/lib/sysusers.d/veloz.conf").read_text()
    assert 'u veloz - "VeloZ trading engine" /var/lib/veloz /usr/sbin/nologin' in record
    # --root creates no user anywhere: not on this host, not in the scratch root.
    assert not (root / "etc/passwd").exists()
    if os.geteuid() != 0:
        pytest.skip("systemd-sysusers --root needs root")
    sysusers = tool("systemd-sysusers", "systemd")
    done = subprocess.run([sysusers, f"--root={root}"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    passwd = [line.split(":") for line in (root / "etc/passwd").read_text().splitlines()]
    veloz = next(entry for entry in passwd if entry[0] == "veloz")
    assert veloz[5:] == ["/var/lib/veloz", "/usr/sbin/nologin"] and int(veloz[2]) < 1000


def test_a_second_run_changes_nothing(release, tmp_path):
    root = tmp_path / "root"
    installed(release, root, "--no-venv")
    before = snapshot(root)
    log = installed(release, root, "--no-venv")
    assert snapshot(root) == before
    assert "code: /opt/veloz unchanged" in log
    assert "/etc/veloz/veloz.env unchanged" in log
    assert "jwt_secret and admin_password kept" in log
    assert not list(root.rglob("*.new"))


def test_operator_edits_are_kept_and_the_release_version_goes_beside(release, tmp_path):
    root = tmp_path / "root"
    installed(release, root, "--no-venv")
    etc = root / "etc/veloz"
    template = (etc / "veloz.env").read_text()
    secret = (etc / "jwt_secret").read_text()
    edited = template + "VELOZ_LOG_DIR=/var/log/veloz\n"
    (etc / "veloz.env").write_text(edited)
    limits = (etc / "risk_limits.yaml").read_text().replace("max_qty: 5", "max_qty: 2")
    (etc / "risk_limits.yaml").write_text(limits)
    # The unit is the release's own: a local edit there is replaced (drop-ins are for that).
    unit = root / "etc/systemd/system/veloz.service"
    unit.write_text(unit.read_text() + "# local edit\n")

    log = installed(release, root, "--no-venv")
    assert (etc / "veloz.env").read_text() == edited
    assert (etc / "veloz.env.new").read_text() == template
    assert mode(etc / "veloz.env.new") == 0o640
    assert (etc / "risk_limits.yaml").read_text() == limits
    assert (etc / "risk_limits.yaml.new").read_bytes() == (
        release / "config/risk_limits.yaml"
    ).read_bytes()
    assert (etc / "jwt_secret").read_text() == secret
    assert "kept your /etc/veloz/veloz.env (the release's is /etc/veloz/veloz.env.new)" in log
    assert unit.read_bytes() == (release / "deploy/systemd/veloz.service").read_bytes()

    # Again: still kept, the .new untouched; back to the release's text: the .new goes.
    new_mtime = (etc / "veloz.env.new").stat().st_mtime_ns
    installed(release, root, "--no-venv")
    assert (etc / "veloz.env").read_text() == edited
    assert (etc / "veloz.env.new").stat().st_mtime_ns == new_mtime
    (etc / "veloz.env").write_text(template)
    installed(release, root, "--no-venv")
    assert not (etc / "veloz.env.new").exists()
    assert (etc / "risk_limits.yaml.new").exists()


def test_an_upgrade_replaces_the_code_and_drops_stale_files(release, tmp_path):
    root = tmp_path / "root"
    installed(release, root, "--no-venv")
    home = root / "opt/veloz"
    (home / "src/veloz/stale_module.py").write_text("# from an older release\n")
    (home / "scripts/backup/lib.sh").write_text("# damaged\n")
    log = installed(release, root, "--no-venv")
    assert "code: updated src scripts in /opt/veloz" in log
    assert not (home / "src/veloz/stale_module.py").exists()
    assert (home / "scripts/backup/lib.sh").read_bytes() == (
        release / "scripts/backup/lib.sh"
    ).read_bytes()
    assert not list(home.glob("*.old"))


def test_run_from_a_checkout_at_opt_veloz_itself(release, tmp_path):
    """The runbooks' way: /opt/veloz is the git checkout, install.sh runs from it."""
    root = tmp_path / "root"
    shutil.copytree(release, root / "opt/veloz", symlinks=True)
    done = subprocess.run(
        [str(root / "opt/veloz/scripts/install.sh"), "--root", str(root), "--no-venv"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "code: installing from /opt/veloz itself, nothing to copy" in done.stderr
    assert (root / "opt/veloz/src/veloz/__init__.py").exists()
    assert not list((root / "opt").glob(".veloz-stage.*"))
    assert (root / "etc/veloz/veloz.env").exists()
    assert (root / "etc/systemd/system/veloz.service").exists()


def test_the_backup_dir_follows_veloz_backup_dir(release, tmp_path):
    root = tmp_path / "root"
    installed(release, root, "--no-venv", VELOZ_BACKUP_DIR="/srv/veloz-backup")
    assert mode(root / "srv/veloz-backup") == 0o750
    assert not (root / "backup").exists()


def test_with_nginx_installs_the_site_without_overwriting_it(release, tmp_path):
    root = tmp_path / "root"
    installed(release, root, "--no-venv", "--with-nginx")
    site = root / "etc/nginx/conf.d/veloz.conf"
    assert site.read_bytes() == (release / "deploy/nginx/veloz.conf").read_bytes()
    site.write_text(site.read_text().replace("server_name", "server_name veloz.internal"))
    installed(release, root, "--no-venv", "--with-nginx")
    assert "veloz.internal" in site.read_text()
    # conf.d includes *.conf only: the release's copy beside it is not loaded twice.
    assert (root / "etc/nginx/conf.d/veloz.conf.new").exists()


def test_a_concurrent_install_is_refused_with_exit_4(release, tmp_path):
    root = tmp_path / "root"
    lock_dir = root / "var/lib/veloz"
    lock_dir.mkdir(parents=True)
    with open(lock_dir / ".install.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = install(release, root, "--no-venv")
    assert done.returncode == 4 and "another install is running" in done.stderr
    assert not (root / "opt/veloz/src").exists()


# One real install: the venv, the installed veloz, a release engine from the layout -------


@pytest.fixture(scope="module")
def real_root(release: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Installed with a real venv (pip from requirements.lock; about 20 s with pip's cache)."""
    root = tmp_path_factory.mktemp("install") / "root"
    installed(release, root, "--python", sys.executable)
    yield root


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_installed_veloz_runs_from_its_own_venv(release, real_root):
    venv = real_root / "opt/veloz/.venv"
    done = subprocess.run(
        [str(venv / "bin/veloz"), "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "engine" in done.stdout, done.stderr
    # A real copy of VeloZ in the venv, not this checkout's editable install.
    where = subprocess.run(
        [str(venv / "bin/python"), "-c", "import veloz; print(veloz.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout.strip()
    assert where.startswith(str(venv / "lib")), where
    # The versions the lock pins.
    frozen = subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pins = {
        line.split("==")[0].lower(): line
        for line in (release / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    for name in ("litestar", "msgspec", "uvicorn"):
        if name in pins:
            assert pins[name].split(";")[0].strip() in frozen, name


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_second_real_install_keeps_the_venv(release, real_root):
    venv = real_root / "opt/veloz/.venv"
    python_mtime = (venv / "bin/python").lstat().st_mtime_ns
    log = installed(release, real_root, "--python", sys.executable)
    assert "venv: /opt/veloz/.venv up to date" in log
    assert (venv / "bin/python").lstat().st_mtime_ns == python_mtime


def _get(url: str, data: bytes | None = None) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_installed_env_file_and_secrets_start_a_release_engine(real_root):
    """The unit's way: the env file's settings (paths moved into the scratch root), the
    unit's working directory, the installed venv. Release preset: auth on, the generated
    JWT secret is strong enough, the generated admin password logs in."""
    settings = env_lines(real_root / "etc/veloz/veloz.env")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VELOZ_")}
    for key, value in settings.items():
        moved = value
        for prefix in ("/var/lib/veloz", "/etc/veloz", "/backup"):
            moved = moved.replace(prefix, f"{real_root}{prefix}")
        env[key] = moved
    port = free_port()
    env |= {"VELOZ_HOST": "127.0.0.1", "VELOZ_PORT": str(port), "VELOZ_LOG_LEVEL": "warn"}
    engine = subprocess.Popen(
        [str(real_root / "opt/veloz/.venv/bin/veloz"), "engine"],
        env=env,
        cwd=real_root / "var/lib/veloz",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert engine.poll() is None, engine.stderr.read().decode() if engine.stderr else ""
            try:
                if _get(f"{base}/health/ready")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("the installed engine did not become ready")
        assert _get(f"{base}/health/live")[0] == 200
        assert _get(f"{base}/api/orders_state")[0] == 401  # release: authentication on
        password = (real_root / "etc/veloz/admin_password").read_text().strip()
        body = json.dumps({"user_id": "admin", "password": password}).encode()
        # Until "ready means the credentials work" lands, the login may lag a moment.
        deadline = time.monotonic() + 15
        while (status := _get(f"{base}/api/auth/login", body))[0] != 200:
            assert time.monotonic() < deadline, status
            time.sleep(0.5)
        assert "access_token" in status[1]
        assert any((real_root / "var/lib/veloz/wal").iterdir())
        assert (real_root / "var/lib/veloz/veloz.db").exists()
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(timeout=30) == 0
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
