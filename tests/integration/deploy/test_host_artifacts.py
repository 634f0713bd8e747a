"""The host deploy files: the systemd unit passes `systemd-analyze verify` and a security
review, the logrotate file passes `logrotate -d` and a real rotation leaves the writer
writing, and the nginx site passes `nginx -t` with a test certificate. The nginx configs
in front of the gateway replicas (the host's site and docker-compose's) pass `nginx -t`,
and a real nginx running docker-compose's spreads requests over the replicas a DNS server
names, skips one that is gone, and lets an SSE client resume on another replica with
Last-Event-ID."""

import asyncio
import contextlib
import datetime
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.processes import free_port
from tests.support.tools import tool

ROOT = Path(__file__).resolve().parents[3]
UNIT = ROOT / "deploy" / "systemd" / "veloz.service"
LOGROTATE = ROOT / "deploy" / "logrotate" / "veloz"
NGINX = ROOT / "deploy" / "nginx" / "veloz.conf"
COMPOSE_NGINX = ROOT / "deploy" / "nginx" / "compose.conf"


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


def upstream_servers(text: str, name: str) -> list[str]:
    """The `server` lines of upstream `name`, comments left out."""
    block = text.split(f"upstream {name} {{", 1)[1].split("}", 1)[0]
    lines = [line.split("#")[0].strip() for line in block.splitlines()]
    return [
        line.removeprefix("server ").rstrip(";") for line in lines if line.startswith("server ")
    ]


def test_the_site_balances_over_the_gateways_with_the_engine_as_backup():
    text = NGINX.read_text()
    directives = "\n".join(line.split("#")[0] for line in text.splitlines())
    servers = upstream_servers(text, "veloz_api")
    gateways = [s for s in servers if "backup" not in s.split()]
    # Several replicas, round robin: no hash of any kind ties a client to one of them.
    assert len(gateways) >= 2 and len(set(gateways)) == len(gateways), servers
    for word in ("ip_hash", "hash ", "sticky", "least_conn"):
        assert word not in directives, word
    # The engine alone (no gateway running) still answers: its line is the backup.
    assert [s for s in servers if "backup" in s.split()] == ["127.0.0.1:8080 backup"]
    assert "127.0.0.1:8080" not in " ".join(gateways)
    # Every location proxies to that upstream, the streams included.
    assert set(re.findall(r"proxy_pass (\S+);", directives)) == {"http://veloz_api"}


def compose_site(text: str, listen: int, resolver: str, gateway_port: int) -> str:
    """docker-compose's nginx config with its addresses moved to the test's: its port, a
    resolver of its own instead of Docker's 127.0.0.11, the gateways' port."""
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    text = text.replace("resolver 127.0.0.11 ", f"resolver {resolver} ")
    return text.replace(
        "set $veloz_gateways gateway:8080;", f"set $veloz_gateways gateway:{gateway_port};"
    )


def test_nginx_accepts_the_compose_config(tmp_path):
    nginx = tool("nginx", "nginx")
    text = COMPOSE_NGINX.read_text()
    done = nginx_test(nginx, tmp_path, nginx_main_config(tmp_path, text))
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "test is successful" in output, output
    assert "[warn]" not in output and "[emerg]" not in output, output
    # The same check refuses a broken one (a proxy_pass to an upstream that is not there).
    broken = text.replace("proxy_pass http://$veloz_gateways;", "proxy_pass http://veloz_nowhere;")
    done = nginx_test(
        nginx, tmp_path / "broken", nginx_main_config(mkdir(tmp_path / "broken"), broken)
    )
    assert done.returncode != 0 and "veloz_nowhere" in done.stderr, done.stderr


def mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def test_the_compose_config_proxies_streams_unbuffered_to_every_replica():
    text = COMPOSE_NGINX.read_text()
    directives = "\n".join(line.split("#")[0] for line in text.splitlines())
    for word in ("ip_hash", "hash ", "sticky"):
        assert word not in directives, word
    # No upstream block: its servers would be resolved once, at start.
    assert not re.search(r"^\s*upstream ", directives, re.MULTILINE)
    # Resolved at request time, so replicas that come and go are followed.
    assert re.search(r"^resolver 127\.0\.0\.11 valid=\d+s", directives, re.MULTILINE)
    assert set(re.findall(r"proxy_pass (\S+);", directives)) == {"http://$veloz_gateways"}
    for header in ("X-Forwarded-For", "X-Request-ID", "Upgrade", "Connection"):
        assert f"proxy_set_header {header} " in directives, header
    for location in ("location = /api/stream {", "location /ws/ {"):
        block = directives.split(location, 1)[1].split("}", 1)[0]
        assert "proxy_buffering off;" in block and "proxy_read_timeout 24h;" in block
        assert "proxy_set_header" not in block, location


# A real nginx with docker-compose's config, in front of two fake gateway replicas that a
# small DNS server names, as Docker's DNS names a service's replicas.


class FakeDns:
    """Answers A queries for `name` with `addresses` (and NXDOMAIN for any other name)."""

    def __init__(self, name: str, addresses: list[str]) -> None:
        self.name = name
        self.addresses = addresses
        self.queries = 0

    def answer(self, query: bytes) -> bytes:
        import struct  # noqa: PLC0415

        ident, _flags, _count = struct.unpack(">HHH", query[:6])
        labels, at = [], 12
        while query[at]:
            labels.append(query[at + 1 : at + 1 + query[at]].decode())
            at += 1 + query[at]
        qtype = struct.unpack(">H", query[at + 1 : at + 3])[0]
        question = query[12 : at + 5]
        self.queries += 1
        if ".".join(labels).lower() != self.name:
            return struct.pack(">HHHHHH", ident, 0x8183, 1, 0, 0, 0) + question
        answers = (
            [
                struct.pack(">HHHIH", 0xC00C, 1, 1, 1, 4) + bytes(int(x) for x in a.split("."))
                for a in self.addresses
            ]
            if qtype == 1
            else []
        )
        header = struct.pack(">HHHHHH", ident, 0x8180, 1, len(answers), 0, 0)
        return header + question + b"".join(answers)


async def start_dns(dns: FakeDns) -> tuple[Any, int]:
    loop = asyncio.get_running_loop()

    class Protocol(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.transport.sendto(dns.answer(data), addr)

    transport, _ = await loop.create_datagram_endpoint(Protocol, local_addr=("127.0.0.1", 0))
    return transport, transport.get_extra_info("sockname")[1]


def fake_gateway(name: str) -> Any:
    """A replica: /whoami names it; /api/stream sends events 1, 2, 3... from after the
    client's Last-Event-ID (the journal sequence, the same on every replica)."""
    from aiohttp import web  # noqa: PLC0415

    async def whoami(request: web.Request) -> web.Response:
        return web.json_response({"replica": name, "xff": request.headers.get("X-Forwarded-For")})

    async def stream(request: web.Request) -> web.StreamResponse:
        after = int(request.headers.get("Last-Event-ID", "0"))
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        for seq in range(after + 1, after + 4):
            await response.write(f"id: {seq}\nevent: fill\ndata: {name}\n\n".encode())
            await asyncio.sleep(0.05)
        await asyncio.sleep(30)  # stays open, as a quiet stream does
        return response

    app = web.Application()
    app.router.add_get("/whoami", whoami)
    app.router.add_get("/api/stream", stream)
    return app


async def read_events(response: Any, count: int) -> list[tuple[int, str]]:
    events: list[tuple[int, str]] = []
    seq = 0
    async for raw in response.content:
        line = raw.decode().strip()
        if line.startswith("id: "):
            seq = int(line[4:])
        elif line.startswith("data: "):
            events.append((seq, line[6:]))
            if len(events) == count:
                break
    return events


@contextlib.asynccontextmanager
async def running_nginx(nginx: str, tmp_path: Path, main: Path) -> AsyncIterator[None]:
    """nginx in the foreground on `main` for the block; afterwards, nothing it logged may
    be an [emerg]."""
    server = await asyncio.create_subprocess_exec(
        nginx,
        "-p",
        str(tmp_path),
        "-c",
        str(main),
        "-g",
        "daemon off;",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield
    finally:
        server.terminate()
        _, errors = await asyncio.wait_for(server.communicate(), 10)
    assert b"[emerg]" not in errors, errors.decode()


async def test_nginx_spreads_over_replicas_and_sse_resumes_on_another(tmp_path):
    import aiohttp  # noqa: PLC0415
    from aiohttp import web  # noqa: PLC0415

    nginx = tool("nginx", "nginx")
    replicas = {"a": "127.0.0.2", "b": "127.0.0.3"}  # loopback addresses, one per replica
    runners: dict[str, web.AppRunner] = {}
    port = free_port()
    for name, address in replicas.items():
        runners[name] = web.AppRunner(fake_gateway(name), shutdown_timeout=0.1)
        await runners[name].setup()
        await web.TCPSite(runners[name], address, port).start()
    dns = FakeDns("gateway", list(replicas.values()))
    transport, dns_port = await start_dns(dns)
    listen = free_port()
    site = compose_site(COMPOSE_NGINX.read_text(), listen, f"127.0.0.1:{dns_port}", port)
    main = nginx_main_config(tmp_path, site)
    base = f"http://127.0.0.1:{listen}"
    try:
        async with (
            running_nginx(nginx, tmp_path, main),
            aiohttp.ClientSession(base, timeout=aiohttp.ClientTimeout(total=10)) as http,
        ):
            for _ in range(100):
                try:
                    async with http.get("/nginx-health") as ready:
                        if ready.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            seen = []
            for _ in range(40):
                async with http.get("/whoami") as answer:
                    assert answer.status == 200, await answer.text()
                    body = await answer.json()
                    seen.append(body["replica"])
            # Both replicas serve, neither all of it: no client is tied to one.
            assert set(seen) == {"a", "b"}, seen
            assert body["xff"] == "127.0.0.1"  # the client's address goes along
            assert dns.queries >= 1
            # An SSE client reads three events from one replica...
            async with http.get("/api/stream") as stream:
                first = await read_events(stream, 3)
            (serving,) = {replica for _, replica in first}
            assert [seq for seq, _ in first] == [1, 2, 3]
            # ... that replica goes away (still in DNS: nginx finds out by connecting) ...
            await runners[serving].cleanup()
            # ... and the client resumes through nginx with Last-Event-ID: the other replica
            # carries on from event 4, nothing missed, nothing repeated.
            async with http.get("/api/stream", headers={"Last-Event-ID": "3"}) as stream:
                assert stream.status == 200
                resumed = await read_events(stream, 3)
            other = ({"a", "b"} - {serving}).pop()
            assert resumed == [(4, other), (5, other), (6, other)]
            for _ in range(10):  # and every plain request lands on the one left
                async with http.get("/whoami") as answer:
                    assert (await answer.json())["replica"] == other
    finally:
        transport.close()
        for runner in runners.values():
            await runner.cleanup()


def host_site(text: str, http: int, https: int, ports: dict[int, int]) -> str:
    """The host's site on the test's loopback ports, its upstream servers moved to the
    fake processes' ports (`ports`: the shipped port -> the test's)."""
    lines = [line for line in text.splitlines() if "listen [::]" not in line]
    text = "\n".join(lines).replace("listen 80;", f"listen 127.0.0.1:{http};")
    text = text.replace("listen 443 ssl;", f"listen 127.0.0.1:{https} ssl;")
    for shipped, test_port in ports.items():
        text = re.sub(rf"server 127\.0\.0\.1:{shipped}\b", f"server 127.0.0.1:{test_port}", text)
    return text


async def test_the_site_uses_the_gateways_and_the_engine_only_when_none_answers(tmp_path):
    import aiohttp  # noqa: PLC0415
    from aiohttp import web  # noqa: PLC0415

    nginx = tool("nginx", "nginx")
    shipped = upstream_servers(NGINX.read_text(), "veloz_api")
    gateway_ports = [int(s.split(":")[1]) for s in shipped if "backup" not in s]
    ports = {port: free_port() for port in [*gateway_ports, 8080]}
    https = free_port()
    site = host_site(NGINX.read_text(), free_port(), https, ports)
    main = nginx_main_config(tmp_path, site)
    runners: list[web.AppRunner] = []

    async def serve(name: str, port: int) -> web.AppRunner:
        runner = web.AppRunner(fake_gateway(name), shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return runner

    await serve("engine", ports[8080])
    # Two of the three gateway lines have a replica behind them; the third is not running.
    gateways = [await serve(f"gateway-{p}", ports[p]) for p in gateway_ports[:2]]
    try:
        connector = aiohttp.TCPConnector(ssl=False)  # the test's self-signed certificate
        async with (
            running_nginx(nginx, tmp_path, main),
            aiohttp.ClientSession(
                f"https://127.0.0.1:{https}",
                connector=connector,
                timeout=aiohttp.ClientTimeout(10),
            ) as http,
        ):

            async def who() -> str:
                for _ in range(100):
                    try:
                        async with http.get("/whoami") as answer:
                            assert answer.status == 200, await answer.text()
                            return str((await answer.json())["replica"])
                    except aiohttp.ClientConnectorError:  # nginx still starting
                        await asyncio.sleep(0.05)
                raise AssertionError("nginx did not answer")

            seen = [await who() for _ in range(30)]
            assert set(seen) == {f"gateway-{p}" for p in gateway_ports[:2]}, seen
            for runner in gateways:  # every gateway gone: the engine, the backup, answers
                await runner.cleanup()
            assert {await who() for _ in range(10)} == {"engine"}
    finally:
        for runner in runners:
            await runner.cleanup()
