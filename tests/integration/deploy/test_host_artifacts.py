"""The host deploy files: the systemd unit passes `systemd-analyze verify` and a security
review, the logrotate file passes `logrotate -d` and a real rotation leaves the writer
writing, and the nginx site passes `nginx -t` with a test certificate."""

import datetime
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.tools import tool

ROOT = Path(__file__).resolve().parents[3]
UNIT = ROOT / "deploy" / "systemd" / "veloz.service"
LOGROTATE = ROOT / "deploy" / "logrotate" / "veloz"
NGINX = ROOT / "deploy" / "nginx" / "veloz.conf"


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


# systemd ----------------------------------------------------------------------------------


def unit_root(tmp_path: Path, unit_text: str) -> Path:
    """A scratch root with the unit in /etc/systemd/system, systemd's own units (the
    targets the unit's dependencies name) and an executable at the unit's ExecStart path,
    so that `verify --root` checks the file exactly as shipped."""
    root = tmp_path / "root"
    system_units = Path("/usr/lib/systemd/system")
    if not system_units.is_dir():
        system_units = Path("/lib/systemd/system")
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system/veloz.service").write_text(unit_text)
    exec_start = re.search(r"^ExecStart=(\S+)", unit_text, re.MULTILINE)
    assert exec_start is not None
    program = root / exec_start[1].lstrip("/")
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    return root


def test_systemd_analyze_verifies_the_unit_as_shipped(tmp_path):
    analyze = tool("systemd-analyze", "systemd")
    root = unit_root(tmp_path, UNIT.read_text())
    done = run(analyze, "verify", "--man=no", f"--root={root}", "veloz.service")
    # verify exits 0 on an unknown key or a bad value; it says so on stderr.
    assert done.returncode == 0 and done.stderr == "", done.stderr
    # The exposure score, 0-100 here (shown as 0.0-10.0): 20 is the top of the "OK" band.
    review = run(
        analyze, "security", "--offline=true", f"--root={root}", "--threshold=20", "veloz.service"
    )
    assert review.returncode == 0, review.stdout[-600:] + review.stderr


def test_systemd_analyze_would_catch_a_broken_unit(tmp_path):
    """The check above has teeth: the same run reports a bad value and a missing program."""
    analyze = tool("systemd-analyze", "systemd")
    broken = UNIT.read_text().replace(
        "RestartPreventExitStatus=2 3 78", "RestartPreventExitStatus=two"
    )
    root = unit_root(tmp_path, broken)
    done = run(analyze, "verify", "--man=no", f"--root={root}", "veloz.service")
    assert "RestartPreventExitStatus" in done.stderr or "two" in done.stderr, done.stderr
    (root / "opt/veloz/.venv/bin/veloz").unlink()
    done = run(analyze, "verify", "--man=no", f"--root={root}", "veloz.service")
    assert done.returncode != 0 and "not executable" in done.stderr


def test_the_unit_says_what_the_runbooks_rely_on():
    directives: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            directives.setdefault(key, []).append(value)
    assert directives["ExecStart"] == ["/opt/veloz/.venv/bin/veloz engine"]
    assert directives["User"] == ["veloz"]
    assert directives["EnvironmentFile"] == ["/etc/veloz/veloz.env"]
    assert directives["WorkingDirectory"] == ["/var/lib/veloz"]
    assert directives["Restart"] == ["on-failure"]
    assert directives["RestartPreventExitStatus"] == ["2 3 78"]  # 75 is worth retrying
    assert directives["KillSignal"] == ["SIGTERM"]
    # The engine's stop: uvicorn's 5 s grace, then 5 s for the journal and 5 s for history.
    assert int(directives["TimeoutStopSec"][0]) > 15
    assert set(directives["ReadWritePaths"][0].split()) == {"/var/lib/veloz", "/var/log/veloz"}
    for hardening in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert directives[hardening] == ["yes"], hardening
    assert directives["ProtectSystem"] == ["strict"]
    assert int(directives["LimitNOFILE"][0]) >= 65536


# logrotate --------------------------------------------------------------------------------


def test_logrotate_debug_run_is_clean(tmp_path):
    logrotate = tool("logrotate", "logrotate")
    done = run(logrotate, "-d", "-s", str(tmp_path / "state"), str(LOGROTATE))
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert not re.search(r"^error", output, re.MULTILINE | re.IGNORECASE), output
    assert "/var/log/veloz/*.log" in output and "14 rotations" in output


WRITER = """
import sys, time
from pathlib import Path
from veloz.observability.logs import configure_logging
import structlog
configure_logging("info", log_dir=Path(sys.argv[1]))
log = structlog.get_logger("veloz.test")
n = 0
while True:
    log.info("line", n=n)
    n += 1
    time.sleep(0.01)
"""


def _numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r'"n": (\d+)', text)]


def wait_for(predicate, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_rotation_keeps_the_engine_writing(tmp_path):
    """A real rotation (the runbook's `logrotate -f`) of a log the engine's own handler
    holds open: the rotated copy has the earlier lines, and the writer goes on writing to
    veloz.log, from its start (no hole of NUL bytes where the old content was)."""
    logrotate = tool("logrotate", "logrotate")
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    config = tmp_path / "veloz.logrotate"
    config.write_text(LOGROTATE.read_text().replace("/var/log/veloz/", f"{log_dir}/"))
    state = tmp_path / "state"
    log = log_dir / "veloz.log"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(log_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    try:
        wait_for(lambda: log.exists() and len(_numbers(log.read_text())) >= 20, "log lines")
        done = run(logrotate, "-f", "-s", str(state), str(config))
        assert done.returncode == 0, done.stderr
        rotated = log_dir / "veloz.log.1"
        first = _numbers(rotated.read_text())
        assert first[:3] == [0, 1, 2]
        wait_for(lambda: len(_numbers(log.read_text())) >= 20, "lines after the rotation")
        content = log.read_bytes()
        assert not content.startswith(b"\0"), "the writer left a hole at the old offset"
        after = _numbers(content.decode())
        assert after[0] > first[-1] and after == list(range(after[0], after[-1] + 1))
        # The next rotation compresses the previous one (delaycompress).
        done = run(logrotate, "-f", "-s", str(state), str(config))
        assert done.returncode == 0, done.stderr
        assert (log_dir / "veloz.log.2.gz").exists() and (log_dir / "veloz.log.1").exists()
        wait_for(lambda: len(_numbers(log.read_text())) >= 5, "lines after a second rotation")
        assert writer.poll() is None, writer.stderr.read().decode() if writer.stderr else ""
    finally:
        writer.kill()
        writer.wait()


# nginx ------------------------------------------------------------------------------------


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "veloz.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("veloz.example.com")]), False)
        .sign(key, hashes.SHA256())
    )
    crt, pem = directory / "veloz.crt", directory / "veloz.key"
    crt.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return crt, pem


def nginx_main_config(tmp_path: Path, site: str) -> Path:
    """A main nginx.conf in tmp_path that includes `site` (the shipped file with its
    certificate paths moved to a test certificate) inside its http block, as Debian's
    /etc/nginx/nginx.conf includes conf.d/*.conf."""
    tls = tmp_path / "tls"
    tls.mkdir()
    self_signed(tls)
    (tmp_path / "veloz.conf").write_text(site.replace("/etc/veloz/tls/", f"{tls}/"))
    main = tmp_path / "nginx.conf"
    temp = tmp_path / "temp"
    temp.mkdir()
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log;\n"
        "events {}\n"
        "http {\n"
        f"    access_log {tmp_path}/access.log;\n"
        f"    client_body_temp_path {temp}/body;\n"
        f"    proxy_temp_path {temp}/proxy;\n"
        f"    fastcgi_temp_path {temp}/fastcgi;\n"
        f"    uwsgi_temp_path {temp}/uwsgi;\n"
        f"    scgi_temp_path {temp}/scgi;\n"
        f"    include {tmp_path}/veloz.conf;\n"
        "}\n"
    )
    return main


def nginx_test(nginx: str, tmp_path: Path, main: Path) -> subprocess.CompletedProcess[str]:
    return run(nginx, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(main))


def test_nginx_accepts_the_site_with_a_test_certificate(tmp_path):
    nginx = tool("nginx", "nginx")
    done = nginx_test(nginx, tmp_path, nginx_main_config(tmp_path, NGINX.read_text()))
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "test is successful" in output, output
    assert "[warn]" not in output and "[emerg]" not in output, output


def test_nginx_test_would_catch_a_missing_certificate(tmp_path):
    nginx = tool("nginx", "nginx")
    broken = NGINX.read_text().replace("veloz.crt", "missing.crt")
    done = nginx_test(nginx, tmp_path, nginx_main_config(tmp_path, broken))
    assert done.returncode != 0 and "missing.crt" in done.stderr, done.stderr


def test_the_site_proxies_streams_unbuffered_and_forwards_the_request():
    text = NGINX.read_text()
    assert "ssl_certificate /etc/veloz/tls/veloz.crt;" in text
    assert "ssl_certificate_key /etc/veloz/tls/veloz.key;" in text
    assert re.search(r"listen 80;.*?return 301 https://\$host\$request_uri;", text, re.DOTALL)
    assert text.count("server 127.0.0.1:8080;") == 1
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Request-ID", "Upgrade"):
        assert f"proxy_set_header {header} " in text, header
    # VELOZ_MAX_BODY_BYTES' default, 64 KiB.
    assert "client_max_body_size 64k;" in text
    for location in ("location = /api/stream {", "location /ws/ {"):
        block = text.split(location, 1)[1].split("}", 1)[0]
        assert "proxy_buffering off;" in block, location
        assert "proxy_read_timeout 24h;" in block, location
        # A location's own proxy_set_header would drop the server-level headers.
        assert "proxy_set_header" not in block, location
