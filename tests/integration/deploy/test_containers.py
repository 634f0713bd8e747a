"""The container and Kubernetes files, checked offline (there is no Docker engine and no
cluster here): the Dockerfile's stages and properties (and BuildKit's own parser), its
HEALTHCHECK against a real engine, docker-compose.yml against the Compose Specification
schema and `docker-compose config` (and the gateway replicas scalable as docker-compose's
own code sees them), the kustomize overlays rendered by `kubectl kustomize` and validated
against Kubernetes' schemas (the engine one pod, the gateways a Deployment with an
autoscaler and a disruption budget), and every file's VELOZ_* settings through the
engine's own settings loader."""

import base64
import fnmatch
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.e2e.test_service_mode import wait_until_serving
from tests.support.processes import eventually, free_port, start_veloz, veloz_env
from tests.support.tools import tool
from veloz.config import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("staging", "production")
VENV_BIN = Path(sys.executable).parent
STRONG_SECRET = "9f1c2e7a4b8d3f6051a9c7e2d4b8f0a36e1d5c9b7a2f4e8d0c6b3a9f5e1d7c2b"


def run(*command: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, check=False, **kwargs
    )


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The engine's own settings loader on exactly these VELOZ_* variables."""
    for key in list(os.environ):
        if key.startswith("VELOZ_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return load_settings()


# Dockerfile --------------------------------------------------------------------------------


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        word, _, rest = whole.partition(" ")
        found.append((word.upper(), " ".join(rest.split())))
    return found


def stages(path: Path) -> list[list[tuple[str, str]]]:
    """The build stages, each starting with its FROM (ARG defaults substituted)."""
    args: dict[str, str] = {}
    result: list[list[tuple[str, str]]] = []
    for word, rest in instructions(path):
        if word == "ARG" and not result:
            name, _, default = rest.partition("=")
            args[name] = default
            continue
        if word == "FROM":
            result.append([])
        for name, value in args.items():
            rest = rest.replace(f"${{{name}}}", value)  # noqa: PLW2901 - the ARG's value
        result[-1].append((word, rest))
    return result


def env_pairs(args: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", args))


def test_dockerfile_is_multi_stage_slim_and_non_root():
    builder, runtime = stages(DOCKERFILE)
    assert builder[0] == ("FROM", "python:3.11-slim-bookworm AS builder")
    assert runtime[0][1].startswith("python:3.11-slim")
    builder_runs = " ".join(rest for word, rest in builder if word == "RUN")
    assert "python -m venv /opt/veloz/.venv" in builder_runs
    assert "--constraint requirements.lock" in builder_runs
    assert ("COPY", "requirements.lock ./") in builder
    runtime_copies = [rest for word, rest in runtime if word == "COPY"]
    assert "--from=builder /opt/veloz/.venv /opt/veloz/.venv" in runtime_copies
    # The runbooks' /opt/veloz/scripts/backup/*.sh exist in the image too.
    assert "scripts /opt/veloz/scripts" in runtime_copies
    users = [rest for word, rest in runtime if word == "USER"]
    assert users == ["veloz:veloz"]
    assert "--uid 10001" in " ".join(rest for word, rest in runtime if word == "RUN")
    # Nothing runs as root after the USER line.
    assert [word for word, _ in runtime].index("USER") > max(
        i for i, (word, _) in enumerate(runtime) if word == "RUN"
    )


def test_dockerfile_volumes_port_healthcheck_and_entrypoint():
    runtime = stages(DOCKERFILE)[-1]
    by_word: dict[str, list[str]] = {}
    for word, rest in runtime:
        by_word.setdefault(word, []).append(rest)
    assert json.loads(by_word["VOLUME"][0]) == ["/var/lib/veloz/wal", "/var/lib/veloz/data"]
    assert by_word["EXPOSE"] == ["8080"]
    assert by_word["STOPSIGNAL"] == ["SIGTERM"]
    (healthcheck,) = by_word["HEALTHCHECK"]
    assert "/health/live" in healthcheck and "--start-period=" in healthcheck
    assert json.loads(by_word["ENTRYPOINT"][0]) == ["/opt/veloz/.venv/bin/veloz"]
    assert json.loads(by_word["CMD"][0]) == ["engine"]  # process name veloz_engine
    env = env_pairs(" ".join(by_word["ENV"]))
    assert env["VELOZ_WAL_DIR"] == "/var/lib/veloz/wal"
    # The history store's default (./data/veloz.db) lands in the data volume.
    assert "VELOZ_DATABASE_URL" not in env
    assert by_word["WORKDIR"] == ["/var/lib/veloz"]


def test_dockerfile_env_passes_the_settings_loader(monkeypatch, tmp_path):
    runtime = stages(DOCKERFILE)[-1]
    env = env_pairs(" ".join(rest for word, rest in runtime if word == "ENV"))
    veloz = {k: v for k, v in env.items() if k.startswith("VELOZ_")}
    (tmp_path / "jwt").write_text(STRONG_SECRET + "\n")
    settings = settings_from(veloz | {"VELOZ_JWT_SECRET_FILE": str(tmp_path / "jwt")}, monkeypatch)
    assert settings.preset == "release" and settings.auth_on and settings.port == 8080
    assert settings.auth_config().enabled
    assert settings.database_url == "sqlite:///./data/veloz.db"  # under WORKDIR: the volume


def healthcheck_command() -> list[str]:
    runtime = stages(DOCKERFILE)[-1]
    (healthcheck,) = [rest for word, rest in runtime if word == "HEALTHCHECK"]
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


def compose_healthcheck_command(port: int, service: str = "engine") -> list[str]:
    test = yaml.safe_load(COMPOSE.read_text())["services"][service]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    return [sys.executable, *(part.replace(":8080/", f":{port}/") for part in test[2:])]


@pytest.mark.slow
def test_the_healthchecks_pass_on_a_live_engine_and_fail_without_one(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VELOZ_")}
    env["VELOZ_PORT"] = str(port)
    engine = start_veloz(
        ["engine", "--port", str(port), "--host", "127.0.0.1"],
        veloz_env(tmp_path / "wal"),
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_until_serving(port, engine)
        assert run(*healthcheck_command(), env=env).returncode == 0
        assert run(*compose_healthcheck_command(port), env=env).returncode == 0
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(timeout=30) == 0
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
    assert run(*healthcheck_command(), env=env).returncode != 0
    assert run(*compose_healthcheck_command(port), env=env).returncode != 0


@pytest.mark.slow
def test_the_gateway_healthcheck_passes_on_a_ready_gateway_and_fails_without_its_engine(
    tmp_path,
):
    from tests.support.gateways import cluster  # noqa: PLC0415
    from tests.support.redis import private_redis  # noqa: PLC0415

    env = {k: v for k, v in os.environ.items() if not k.startswith("VELOZ_")}
    with private_redis(tmp_path / "redis") as redis, cluster(tmp_path, redis, gateways=1) as c:
        check = compose_healthcheck_command(c.gateways[0].port, "gateway")
        assert run(*check, env=env).returncode == 0
        c.engine.stop()  # the gateway lives on, not ready: docker-compose ps says unhealthy
        eventually(lambda: run(*check, env=env).returncode != 0, 15, "the healthcheck fails")


def test_dockerfile_parses_with_buildkits_own_parser():
    """PyPI `dockerfile` wraps BuildKit's Go parser: what `docker build` itself would read."""
    try:
        import dockerfile  # type: ignore[import-not-found,import-untyped,unused-ignore]  # noqa: PLC0415
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("the `dockerfile` package is missing (pyproject's dev extras)")
        pytest.skip("pip install dockerfile (BuildKit's parser)")
    parsed = dockerfile.parse_file(str(DOCKERFILE))
    assert [command.cmd.upper() for command in parsed] == [
        word for word, _ in instructions(DOCKERFILE)
    ]
    healthcheck = next(c for c in parsed if c.cmd.upper() == "HEALTHCHECK")
    assert healthcheck.value[0] == "CMD" and healthcheck.json


def ignored_by_dockerignore(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern[1:] if negate else pattern
        glob = glob.rstrip("/")
        matches = any(
            fnmatch.fnmatch(c, glob) or (glob.startswith("**/") and fnmatch.fnmatch(c, glob[3:]))
            for c in candidates
        ) or any(fnmatch.fnmatch(p, glob[3:]) for p in parts if glob.startswith("**/"))
        if matches:
            ignored = not negate
    return ignored


def test_dockerignore_sends_what_the_build_copies_and_no_more():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = []
    for word, rest in instructions(DOCKERFILE):
        if word == "COPY" and not rest.startswith("--from"):
            copied += rest.split()[:-1]
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), source
        assert not ignored_by_dockerignore(source, patterns), source
    for left_out in (".venv/bin/python", "tests/conftest.py", ".git/HEAD", "data/wal"):
        assert ignored_by_dockerignore(left_out, patterns), left_out
    for left_out in ("src/veloz/__pycache__/x.pyc", "src/veloz.egg-info/PKG-INFO"):
        assert ignored_by_dockerignore(left_out, patterns), left_out


# docker-compose.yml --------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_compose_file_matches_the_compose_specification(tmp_path):
    check = VENV_BIN / "check-jsonschema"
    assert check.exists(), "check-jsonschema is missing from the venv (pyproject's dev extras)"
    done = run(check, "--builtin-schema", "vendor.compose-spec", COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr
    # The check has teeth: a misspelt key and a wrong type are caught.
    broken = compose()
    broken["services"]["engine"]["helthcheck"] = broken["services"]["engine"].pop("healthcheck")
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    done = run(check, "--builtin-schema", "vendor.compose-spec", tmp_path / "broken.yml")
    assert done.returncode == 1 and "helthcheck" in done.stdout, done.stdout


def test_docker_compose_config_accepts_it():
    docker_compose = tool("docker-compose", "docker-compose")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VELOZ_", "COMPOSE_"))}
    done = run(docker_compose, "-f", COMPOSE, "config", "-q", cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr
    rendered = run(docker_compose, "-f", COMPOSE, "config", cwd=ROOT, env=env)
    resolved = yaml.safe_load(rendered.stdout)
    engine = resolved["services"]["engine"]
    assert engine["image"] == "veloz/veloz-engine:0.1.0"
    # The API's port is nginx's (over the gateways), loopback unless VELOZ_BIND says; the
    # engine's own is for operators on the host only.
    assert resolved["services"]["nginx"]["ports"] == ["127.0.0.1:8080:8080/tcp"]
    assert engine["ports"] == ["127.0.0.1:8090:8080/tcp"]
    # The env file is read and merged with the service's own environment.
    assert engine["environment"]["VELOZ_PRESET"] == "release"
    assert engine["environment"]["VELOZ_JWT_SECRET_FILE"] == "/run/secrets/jwt_secret"
    gateway = resolved["services"]["gateway"]
    assert gateway["image"] == engine["image"]
    assert gateway["environment"]["VELOZ_PRESET"] == "release"  # the same env file
    # No host port and no name of its own: nothing two replicas would fight over.
    assert "ports" not in gateway and "container_name" not in gateway
    rendered = run(
        docker_compose, "-f", COMPOSE, "config", cwd=ROOT, env=env | {"VELOZ_PORT": "9443"}
    )
    assert yaml.safe_load(rendered.stdout)["services"]["nginx"]["ports"] == [
        "127.0.0.1:9443:8080/tcp"
    ]


# What docker-compose itself warns about before `up --scale SERVICE=N` (its own code, run
# with its own interpreter): a fixed container name, a port fixed on the host.
SCALE_WARNINGS = """
import json, logging, sys
from compose.config import config
from compose.config.environment import Environment
from compose.service import Service

said = []
class Collect(logging.Handler):
    def emit(self, record):
        said.append(record.getMessage())
logging.getLogger("compose.service").addHandler(Collect())
path = sys.argv[1]
# Relative paths (env files, mounts) from the repository, as `--project-directory .`.
details = config.find(".", [path], Environment.from_env_file("."), override_dir=".")
for service in config.load(details).services:
    options = {k: service[k] for k in ("container_name", "ports") if k in service}
    Service(service["name"], project="veloz", **options).show_scale_warnings(5)
print(json.dumps(said))
"""


def scale_warnings(docker_compose: str, path: Path) -> list[str]:
    """docker-compose 1.x's warnings for `--scale <every service>=5` of the file at path."""
    interpreter = Path(docker_compose).read_bytes()[:200].split(b"\n")[0]
    if not interpreter.startswith(b"#!") or b"python" not in interpreter:
        pytest.skip("docker-compose is not the Python docker-compose 1.x (Debian's)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VELOZ_", "COMPOSE_"))}
    done = run(interpreter[2:].decode().strip(), "-c", SCALE_WARNINGS, path, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr
    found: list[str] = json.loads(done.stdout)
    return found


def test_the_gateway_scales_and_the_engine_cannot(tmp_path):
    """`docker-compose up -d --scale gateway=5`: no warning for the gateway; the engine's
    fixed name (one writer per journal) and the published ports are what compose names."""
    docker_compose = tool("docker-compose", "docker-compose")
    warnings = scale_warnings(docker_compose, COMPOSE)
    assert not [w for w in warnings if '"gateway"' in w], warnings
    engine = [w for w in warnings if '"engine"' in w]
    assert len(engine) == 2 and "custom container name" in engine[0], warnings
    # The same check on a gateway given a name and a host port of its own.
    broken = compose()
    broken["services"]["gateway"]["container_name"] = "veloz-gateway"
    broken["services"]["gateway"]["ports"] = ["127.0.0.1:8090:8080"]
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(broken))
    warnings = scale_warnings(docker_compose, tmp_path / "docker-compose.yml")
    assert len([w for w in warnings if '"gateway"' in w]) == 2, warnings


def test_the_gateways_follow_the_engine_and_nginx_is_in_front():
    spec = compose()
    services = spec["services"]
    engine, gateway, nginx = services["engine"], services["gateway"], services["nginx"]
    assert gateway["image"] == engine["image"] and "build" not in gateway
    assert gateway["command"] == ["gateway", "--host", "0.0.0.0", "--port", "8080"]
    assert "container_name" not in gateway and "ports" not in gateway
    assert not gateway.get("volumes")  # stateless: no journal, no data
    assert gateway["env_file"] == engine["env_file"]
    env = gateway["environment"]
    # The engine publishes to the Redis the gateways read.
    assert env["VELOZ_REDIS_URL"] == engine["environment"]["VELOZ_REDIS_URL"]
    redis = urlsplit(env["VELOZ_REDIS_URL"])
    assert redis.hostname in services and redis.port == 6379
    # Commands go to the engine's service name and its container port.
    engine_url = urlsplit(env["VELOZ_ENGINE_URL"])
    assert (engine_url.hostname, engine_url.port) == ("engine", 8080)
    assert set(gateway["depends_on"]) >= {"engine", "redis"}
    # Its audit spool in the container's own filesystem (kept across a restart of the
    # container), not on a tmpfs, which every stop empties.
    spool = env["VELOZ_GATEWAY_AUDIT_DIR"]
    assert spool.startswith("/") and not any(
        spool.startswith(mount.split(":")[0].rstrip("/") + "/") for mount in gateway["tmpfs"]
    )
    # Secrets: what a gateway reads, each declared, the admin password not among them.
    assert set(gateway["secrets"]) == {"jwt_secret", "database_url", "engine_api_key"}
    for secret in gateway["secrets"]:
        assert env[f"VELOZ_{secret.upper()}_FILE"] == f"/run/secrets/{secret}"
        assert secret in spec["secrets"]
    health = " ".join(gateway["healthcheck"]["test"])
    assert "127.0.0.1:8080/health/ready" in health or "127.0.0.1:8080/health/live" in health
    # nginx: the official Debian image, this repository's config, the one published port.
    assert re.fullmatch(r"nginx:1\.\d+-bookworm", nginx["image"]), nginx["image"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in nginx["volumes"]}
    assert mounts["/etc/nginx/conf.d/default.conf"] == "./deploy/nginx/compose.conf"
    conf = (ROOT / "deploy/nginx/compose.conf").read_text()
    listen = re.search(r"^\s*listen (\d+);", conf, re.MULTILINE)
    assert listen is not None and nginx["ports"][0].endswith(f":{listen[1]}")
    upstream = re.search(r"set \$veloz_gateways (\S+):(\d+);", conf)
    assert upstream is not None and upstream[1] == "gateway" and upstream[2] == "8080"
    assert "resolver 127.0.0.11 " in conf  # Docker's DNS: every replica, as it comes and goes
    directives = "\n".join(line.split("#")[0] for line in conf.splitlines())
    assert "ip_hash" not in directives and "sticky" not in directives  # any replica will do


def test_the_engine_and_gateways_trust_the_compose_network_only():
    spec = compose()
    subnet_text = spec["networks"]["default"]["ipam"]["config"][0]["subnet"]
    default = re.fullmatch(r"\$\{VELOZ_SUBNET:-(.+)\}", subnet_text)
    assert default is not None, subnet_text
    subnet = ipaddress.ip_network(default[1])
    assert subnet.is_private and subnet.num_addresses >= 64  # room for the replicas
    for name in ("engine", "gateway"):
        trusted = spec["services"][name]["environment"]["VELOZ_TRUSTED_PROXIES"]
        assert trusted == subnet_text, name  # the same range, whatever .env sets
    # No service picks its own network: every one is on the trusted range.
    assert not [n for n, s in spec["services"].items() if s.get("networks")]


def test_compose_services_volumes_and_healthchecks():
    spec = compose()
    services = spec["services"]
    assert {
        "engine",
        "gateway",
        "nginx",
        "postgres",
        "redis",
        "prometheus",
        "alertmanager",
        "grafana",
    } <= set(services)
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    engine = services["engine"]
    assert engine["build"] == {"context": ".", "dockerfile": "deploy/docker/Dockerfile"}
    mounts = {v.split(":")[1]: v.split(":")[0] for v in engine["volumes"]}
    # Named volumes (not bind mounts) for the journal and the data, declared at the top.
    assert mounts["/var/lib/veloz/wal"] in spec["volumes"]
    assert mounts["/var/lib/veloz/data"] in spec["volumes"]
    # One engine per journal: a fixed container name (also `docker restart veloz-engine`).
    assert engine["container_name"] == "veloz-engine"
    assert engine["stop_grace_period"] == "30s"
    assert engine["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
        for env_file in service.get("env_file", []):
            assert (ROOT / env_file).is_file(), env_file
    for secret in spec["secrets"].values():
        assert secret["file"].startswith("deploy/docker/secrets/")


def test_compose_wiring_matches_the_monitoring_configs():
    services = compose()["services"]
    names = set(services) | {
        alias
        for service in services.values()
        for network in (service.get("networks") or {}).values()
        for alias in (network or {}).get("aliases", [])
    }
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = [
        target
        for job in prometheus["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    ] + prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    for target in targets:
        assert target.split(":")[0] in names, target
    # Every gateway replica scraped on its own, found by the service's name in Docker's DNS.
    (gateways,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "veloz-gateway"]
    (dns,) = gateways["dns_sd_configs"]
    assert dns["names"] == ["gateway"] and dns["type"] == "A" and dns["port"] == 8080
    # The rule files sit beside the config in the container, as prometheus.yml names them.
    prometheus_mounts = [v.split(":")[1] for v in services["prometheus"]["volumes"]]
    for rule_file in prometheus["rule_files"]:
        assert f"/etc/prometheus/{rule_file}" in prometheus_mounts
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/veloz.yml").read_text()
    )
    grafana_mounts = dict(reversed(v.split(":")[:2]) for v in services["grafana"]["volumes"])
    dashboards = provider["providers"][0]["options"]["path"]
    assert grafana_mounts[dashboards] == "./deploy/grafana/dashboards"
    assert grafana_mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    provisioning = ROOT / "deploy/grafana/provisioning"
    datasource = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def compose_settings(service: str, tmp_path: Path) -> dict[str, str]:
    """The image's ENV, then the env_file, then the service's environment (compose's
    own `${VAR:-default}` taken at its default), with secret files such as
    deploy/docker/secrets/README.md tells how to make."""
    runtime = stages(DOCKERFILE)[-1]
    env = env_pairs(" ".join(rest for word, rest in runtime if word == "ENV"))
    spec = compose()["services"][service]
    for line in (ROOT / spec["env_file"][0]).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    secrets = {
        "jwt_secret": STRONG_SECRET,
        "admin_password": "a0b1c2d3e4f5a6b7",
        "database_url": "postgresql://veloz:pw@postgres:5432/veloz",
        "engine_api_key": "vz_0123456789ab_" + "c" * 43,
    }
    for key, value in spec["environment"].items():
        value = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)  # noqa: PLW2901
        if value.startswith("/run/secrets/"):
            name = value.removeprefix("/run/secrets/")
            (tmp_path / name).write_text(secrets[name])
            value = str(tmp_path / name)  # noqa: PLW2901
        env[key] = value
    return {k: v for k, v in env.items() if k.startswith("VELOZ_")}


@pytest.mark.parametrize("service", ["engine", "gateway"])
def test_compose_settings_pass_the_settings_loader(service, monkeypatch, tmp_path):
    settings = settings_from(compose_settings(service, tmp_path), monkeypatch)
    assert settings.database_url.startswith("postgresql://veloz:")
    assert settings.auth_config().enabled and settings.port == 8080
    redis = settings.redis_config()
    assert redis is not None and redis.url == "redis://redis:6379/0"
    assert settings.trusted_proxies


def test_compose_secrets_stay_out_of_git():
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    secrets = "deploy/docker/secrets"
    done = run(git, "check-ignore", "-q", f"{secrets}/jwt_secret", cwd=ROOT)
    assert done.returncode == 0, "deploy/docker/secrets/jwt_secret would be committed"
    done = run(git, "check-ignore", "-q", f"{secrets}/README.md", cwd=ROOT)
    assert done.returncode == 1


# Kubernetes (kustomize) ------------------------------------------------------------------


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    kubectl = tool("kubectl", "kubectl")
    overlay = request.param
    done = run(kubectl, "kustomize", K8S / "overlays" / overlay)
    assert done.returncode == 0, done.stderr
    path = tmp_path_factory.mktemp("k8s") / f"{overlay}.yaml"
    path.write_text(done.stdout)
    return overlay, path, [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d
        for d in docs
        if d["kind"] == kind and (name is None or d["metadata"]["name"].startswith(name))
    ]
    assert len(found) == 1, (kind, name, [d["metadata"]["name"] for d in found])
    return found[0]


def test_overlays_validate_against_kubernetes_schemas(rendered, tmp_path):
    _, path, docs = rendered
    validate = VENV_BIN / "kubernetes-validate"
    assert validate.exists(), "kubernetes-validate is missing (pyproject's dev extras)"
    # 1.32: kubectl's own version here; --strict rejects any field the schema lacks.
    done = run(validate, "--strict", "--quiet", "-k", "1.32.0", path)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = [dict(d) for d in docs]
    statefulset = one(broken, "StatefulSet")
    statefulset["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump_all(broken))
    done = run(validate, "--strict", "--quiet", "-k", "1.32.0", tmp_path / "broken.yaml")
    assert done.returncode != 0 and "livenessprobe" in done.stdout + done.stderr


def test_the_engine_is_one_writer_with_its_journal_on_a_volume(rendered):
    overlay, _, docs = rendered
    namespace = {"staging": "veloz-staging", "production": "veloz"}[overlay]
    assert one(docs, "Namespace")["metadata"]["name"] == namespace
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {namespace}
    statefulset = one(docs, "StatefulSet", "veloz-engine")
    spec = statefulset["spec"]
    assert spec["replicas"] == 1
    assert spec["updateStrategy"]["type"] == "RollingUpdate"
    assert spec["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["name"] == "veloz-engine"  # kubectl set image ... veloz-engine=...
    assert container["image"].startswith("veloz/veloz-engine:")
    config = one(docs, "ConfigMap", "veloz-engine-env")["data"]
    assert container["envFrom"] == [{"configMapRef": {"name": config_name(docs)}}]
    claims = {t["metadata"]["name"]: t["spec"] for t in spec["volumeClaimTemplates"]}
    assert claims["wal"]["accessModes"] == ["ReadWriteOnce"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["wal"] == config["VELOZ_WAL_DIR"] == "/var/lib/veloz/wal"
    assert spec["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "veloz"


def test_the_projector_runs_as_a_sidecar_on_the_journal_volume(rendered):
    _, _, docs = rendered
    pod = one(docs, "StatefulSet", "veloz-engine")["spec"]["template"]["spec"]
    (sidecar,) = pod["initContainers"]
    (engine,) = pod["containers"]
    assert sidecar["name"] == "veloz-projector" and sidecar["args"] == ["projector"]
    assert sidecar["restartPolicy"] == "Always"  # a native sidecar: stops after the engine
    assert sidecar["image"] == engine["image"] and sidecar["envFrom"] == engine["envFrom"]
    assert sidecar.get("env") == engine.get("env")  # the same database URL
    mounts = {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]}
    engine_mounts = {m["name"]: m["mountPath"] for m in engine["volumeMounts"]}
    assert mounts["wal"] == engine_mounts["wal"] and mounts["data"] == engine_mounts["data"]
    assert one(docs, "ConfigMap", "veloz-engine-env")["data"]["VELOZ_PROJECTOR"] == "external"
    assert sidecar["securityContext"] == engine["securityContext"]


def config_name(docs: list[dict[str, Any]]) -> str:
    return str(one(docs, "ConfigMap", "veloz-engine-env")["metadata"]["name"])


def test_probes_resources_and_security_context(rendered):
    _, _, docs = rendered
    pod = one(docs, "StatefulSet")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    probes = {
        kind: (container[kind]["httpGet"]["path"], container[kind]["httpGet"]["port"])
        for kind in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    assert probes == {
        "livenessProbe": ("/health/live", "http"),
        "readinessProbe": ("/health/ready", "http"),
        "startupProbe": ("/health/startup", "http"),
    }
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001  # the image's
    assert security["fsGroup"] == 10001
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["automountServiceAccountToken"] is False
    # Beyond the drain bound, and beyond what the systemd unit allows (TimeoutStopSec).
    unit = (ROOT / "deploy/systemd/veloz.service").read_text()
    stop = int(re.search(r"^TimeoutStopSec=(\d+)", unit, re.MULTILINE)[1])  # type: ignore[index]
    assert pod["terminationGracePeriodSeconds"] > stop


def test_services_pdb_and_network_policy_select_the_engine(rendered):
    overlay, _, docs = rendered
    labels = one(docs, "StatefulSet")["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict[str, str]) -> bool:
        return bool(selector) and selector.items() <= labels.items()

    services = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "Service"}
    assert selects(services["veloz-engine"]["selector"])
    assert services["veloz-engine-headless"]["clusterIP"] == "None"
    assert selects(services["veloz-engine-headless"]["selector"])
    assert one(docs, "StatefulSet")["spec"]["serviceName"] == "veloz-engine-headless"
    pdb = one(docs, "PodDisruptionBudget", "veloz-engine")["spec"]
    assert selects(pdb["selector"]["matchLabels"])
    assert pdb["maxUnavailable"] == (1 if overlay == "staging" else 0)
    policy = one(docs, "NetworkPolicy", "veloz-engine")["spec"]
    assert selects(policy["podSelector"]["matchLabels"])
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    # Other pods' selectors are left as written (no common labels pushed into them).
    dns = policy["egress"][0]["to"][0]
    assert dns["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert {p["port"] for p in policy["egress"][0]["ports"]} == {53}
    assert policy["ingress"][0]["ports"] == [{"port": "http", "protocol": "TCP"}]


def test_secrets_and_risk_limits_come_from_files(rendered):
    overlay, _, docs = rendered
    pod = one(docs, "StatefulSet")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    secret = one(docs, "Secret", "veloz-engine-secrets")
    assert volumes["secrets"]["secret"]["secretName"] == secret["metadata"]["name"]
    keys = {"jwt_secret", "admin_password", "database_url"}
    assert set(secret["data"]) == keys
    # The gateways' Secret: theirs only, from the same files, no admin password.
    gateway_secret = one(docs, "Secret", "veloz-gateway-secrets")
    gateway_keys = {"jwt_secret", "database_url", "engine_api_key"}
    assert set(gateway_secret["data"]) == gateway_keys
    for key in keys | gateway_keys:
        on_disk = (K8S / "overlays" / overlay / "secrets" / key).read_bytes()
        for generated in (secret, gateway_secret):
            if key in generated["data"]:
                assert base64.b64decode(generated["data"][key]) == on_disk
        assert b"changeme-placeholder" in on_disk  # never a real secret in git
    limits = one(docs, "ConfigMap", "veloz-risk-limits")
    assert volumes["risk-limits"]["configMap"]["name"] == limits["metadata"]["name"]
    assert limits["data"]["risk_limits.yaml"] == (ROOT / "config/risk_limits.yaml").read_text()
    assert (K8S / "base/risk_limits.yaml").read_bytes() == (
        ROOT / "config/risk_limits.yaml"
    ).read_bytes()


def test_rendered_settings_load_and_placeholders_refuse_to_start(rendered, monkeypatch, tmp_path):
    _, _, docs = rendered
    pod = one(docs, "StatefulSet")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = dict(one(docs, "ConfigMap", "veloz-engine-env")["data"])
    env |= {e["name"]: e["value"] for e in container.get("env", [])}
    secret = one(docs, "Secret", "veloz-engine-secrets")["data"]
    mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "secrets")
    for key, value in secret.items():
        (tmp_path / key).write_bytes(base64.b64decode(value))
    files = {k: v.replace(mount, str(tmp_path)) for k, v in env.items() if v.startswith(mount)}
    assert {"VELOZ_JWT_SECRET_FILE", "VELOZ_ADMIN_PASSWORD_FILE"} <= set(files)
    for path in files.values():
        assert Path(path).exists(), path
    settings = settings_from(env | files, monkeypatch)
    assert settings.preset == "release"
    # PostgreSQL in both overlays: the gateways share the engine's store.
    assert settings.database_url.startswith("postgresql://")
    with pytest.raises(SettingsError, match="VELOZ_JWT_SECRET"):
        settings.auth_config()
    (tmp_path / "jwt_secret").write_text(STRONG_SECRET)
    assert settings_from(env | files, monkeypatch).auth_config().enabled


def test_the_upgrade_overlay_of_the_helm_mapping_changes_only_the_image(tmp_path):
    """docs/operations/kubernetes.md's `helm upgrade ... -f /tmp/upgrade-values.yaml`:
    a throwaway overlay on top of production that sets the image tag."""
    kubectl = tool("kubectl", "kubectl")
    k8s = tmp_path / "k8s"
    shutil.copytree(K8S, k8s)
    production = k8s / "overlays" / "production"
    upgrade = k8s / "overlays" / "upgrade"
    upgrade.mkdir()
    (upgrade / "kustomization.yaml").write_text(
        'resources: [../production]\nimages: [{name: veloz/veloz-engine, newTag: "1.1.0"}]\n'
    )
    before = list(yaml.safe_load_all(run(kubectl, "kustomize", production).stdout))
    done = run(kubectl, "kustomize", upgrade)
    assert done.returncode == 0, done.stderr
    after = list(yaml.safe_load_all(done.stdout))
    old = one(before, "StatefulSet")
    new = one(after, "StatefulSet")
    # The engine and its projector sidecar run the same image: both move to the new tag.
    for kind in ("containers", "initContainers"):
        (container,) = new["spec"]["template"]["spec"][kind]
        assert container["image"] == "veloz/veloz-engine:1.1.0"
        (previous,) = old["spec"]["template"]["spec"][kind]
        container["image"] = previous["image"]
    assert new == old
    # So do the gateways (one release: engine and gateways speak the same API).
    old_gateway = one(before, "Deployment", "veloz-gateway")
    new_gateway = one(after, "Deployment", "veloz-gateway")
    (container,) = new_gateway["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "veloz/veloz-engine:1.1.0"
    container["image"] = old_gateway["spec"]["template"]["spec"]["containers"][0]["image"]
    assert new_gateway == old_gateway
    assert [d for d in after if d["kind"] not in ("StatefulSet", "Deployment")] == [
        d for d in before if d["kind"] not in ("StatefulSet", "Deployment")
    ]


# The gateway replicas on Kubernetes ----------------------------------------------------------


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


def test_the_gateways_are_a_deployment_with_an_autoscaler_and_a_budget(rendered):
    _, _, docs = rendered
    deployment = one(docs, "Deployment", "veloz-gateway")
    spec = deployment["spec"]
    labels = pod_labels(deployment)
    assert labels["app"] == "veloz-gateway"  # the runbooks' kubectl get pods -l app=veloz-gateway
    assert selects(spec["selector"]["matchLabels"], labels)
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0  # no capacity lost
    # The autoscaler owns the count: a number here would be put back by every apply.
    assert "replicas" not in spec
    hpa = one(docs, "HorizontalPodAutoscaler", "veloz-gateway")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "veloz-gateway",
    }
    assert hpa["spec"]["minReplicas"] == 3 < hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    pdb = one(docs, "PodDisruptionBudget", "veloz-gateway")["spec"]
    assert selects(pdb["selector"]["matchLabels"], labels)
    assert pdb.get("maxUnavailable", 0) >= 1 or pdb.get("minAvailable", 3) < 3  # drainable
    # The gateways' budget leaves the engine's pod alone, and the engine's the gateways'.
    engine = one(docs, "StatefulSet", "veloz-engine")
    assert not selects(pdb["selector"]["matchLabels"], pod_labels(engine))
    engine_pdb = one(docs, "PodDisruptionBudget", "veloz-engine")["spec"]
    assert not selects(engine_pdb["selector"]["matchLabels"], labels)
    service = one(docs, "Service", "veloz-gateway")["spec"]
    assert selects(service["selector"], labels) and not selects(
        service["selector"], pod_labels(engine)
    )
    assert service.get("sessionAffinity", "None") == "None"  # SSE resumes on any replica
    assert service["ports"][0]["port"] == 8080


def test_the_engine_stays_one_pod_in_no_autoscaler(rendered):
    _, _, docs = rendered
    assert one(docs, "StatefulSet", "veloz-engine")["spec"]["replicas"] == 1
    targets = [d["spec"]["scaleTargetRef"] for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    assert targets and all(t["kind"] == "Deployment" for t in targets)
    assert "veloz-engine" not in {t["name"] for t in targets}
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"] == ["veloz-gateway"]


def test_the_gateway_pod_runs_like_the_engine(rendered):
    _, _, docs = rendered
    engine_pod = one(docs, "StatefulSet", "veloz-engine")["spec"]["template"]["spec"]
    pod = one(docs, "Deployment", "veloz-gateway")["spec"]["template"]["spec"]
    (engine,) = engine_pod["containers"]
    (container,) = pod["containers"]
    assert container["image"] == engine["image"]
    assert container["args"] == ["gateway", "--host", "0.0.0.0", "--port", "8080"]
    probes = {
        kind: (container[kind]["httpGet"]["path"], container[kind]["httpGet"]["port"])
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes == {
        "startupProbe": ("/health/startup", "http"),
        "livenessProbe": ("/health/live", "http"),
        "readinessProbe": ("/health/ready", "http"),
    }
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert pod["securityContext"] == engine_pod["securityContext"]
    assert container["securityContext"] == engine["securityContext"]
    assert pod["automountServiceAccountToken"] is False
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    # Stateless: no claim, no journal; only the secrets, a scratch /tmp and the emptyDir
    # its audit spool (VELOZ_GATEWAY_AUDIT_DIR) is in, which outlives a container restart.
    assert {v["name"]: sorted(set(v) - {"name"}) for v in pod["volumes"]} == {
        "secrets": ["secret"],
        "tmp": ["emptyDir"],
        "audit": ["emptyDir"],
    }
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    env = one(docs, "ConfigMap", "veloz-gateway-env")["data"]
    assert env["VELOZ_GATEWAY_AUDIT_DIR"] == mounts["audit"]
    account = one(docs, "ServiceAccount", "veloz-gateway")
    assert pod["serviceAccountName"] == account["metadata"]["name"]


def test_network_policies_let_the_gateways_reach_the_engine_and_redis(rendered):
    _, _, docs = rendered
    gateway_labels = pod_labels(one(docs, "Deployment", "veloz-gateway"))
    engine_labels = pod_labels(one(docs, "StatefulSet", "veloz-engine"))
    policy = one(docs, "NetworkPolicy", "veloz-gateway")["spec"]
    assert selects(policy["podSelector"]["matchLabels"], gateway_labels)
    assert not selects(policy["podSelector"]["matchLabels"], engine_labels)
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}

    def egress_ports(labels: dict[str, str]) -> set[int]:
        return {
            port["port"]
            for rule in policy["egress"]
            for peer in rule["to"]
            if "podSelector" in peer
            and "namespaceSelector" not in peer
            and peer["podSelector"].get("matchLabels", {}).items() <= labels.items()
            for port in rule["ports"]
        }

    assert 8080 in egress_ports(engine_labels)
    assert {6379, 26379} <= egress_ports({"app.kubernetes.io/name": "redis"})  # any pod
    ingress_namespaces = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in policy["ingress"]
        for peer in rule["from"]
        if "namespaceSelector" in peer
    }
    assert {"ingress-nginx", "monitoring"} <= ingress_namespaces
    # The engine's own policy admits the gateways on its API port.
    engine_policy = one(docs, "NetworkPolicy", "veloz-engine")["spec"]
    assert any(
        "podSelector" in peer and selects(peer["podSelector"]["matchLabels"], gateway_labels)
        for rule in engine_policy["ingress"]
        for peer in rule["from"]
    )


def test_gateway_settings_load_and_name_the_engine_and_its_redis(rendered, monkeypatch, tmp_path):
    _, _, docs = rendered
    pod = one(docs, "Deployment", "veloz-gateway")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (source,) = container["envFrom"]
    config = one(docs, "ConfigMap", "veloz-gateway-env")
    assert source == {"configMapRef": {"name": config["metadata"]["name"]}}
    env = dict(config["data"]) | {e["name"]: e["value"] for e in container.get("env", [])}
    # Commands go to the engine's headless Service, which lists it even while it is not
    # ready (in MAINTENANCE an admin's `ready` must still reach it), on its port.
    engine_url = urlsplit(env["VELOZ_ENGINE_URL"])
    (engine_service,) = [
        d
        for d in docs
        if d["kind"] == "Service" and d["metadata"]["name"] == "veloz-engine-headless"
    ]
    assert engine_url.hostname == engine_service["metadata"]["name"]
    assert engine_service["spec"]["publishNotReadyAddresses"] is True
    assert engine_service["spec"]["selector"]["app.kubernetes.io/component"] == "engine"
    assert engine_url.port == engine_service["spec"]["ports"][0]["port"]
    # The engine publishes to the Redis the gateways read.
    engine_env = one(docs, "ConfigMap", "veloz-engine-env")["data"]
    for key in ("VELOZ_REDIS_URL", "VELOZ_REDIS_SENTINELS", "VELOZ_REDIS_MASTER"):
        assert env.get(key) == engine_env.get(key), key
    assert engine_env.get("VELOZ_REDIS_URL") or engine_env.get("VELOZ_REDIS_SENTINELS")
    # Authentication as on the engine: same preset, same JWT secret.
    assert env["VELOZ_PRESET"] == engine_env["VELOZ_PRESET"]
    secret = one(docs, "Secret", "veloz-gateway-secrets")
    engine_secret = one(docs, "Secret", "veloz-engine-secrets")
    assert secret["data"]["jwt_secret"] == engine_secret["data"]["jwt_secret"]
    assert "admin_password" not in secret["data"]
    mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "secrets")
    assert (
        next(v for v in pod["volumes"] if v["name"] == "secrets")["secret"]["secretName"]
        == (secret["metadata"]["name"])
    )
    for key, value in secret["data"].items():
        (tmp_path / key).write_bytes(base64.b64decode(value))
    files = {k: v.replace(mount, str(tmp_path)) for k, v in env.items() if v.startswith(mount)}
    assert {"VELOZ_JWT_SECRET_FILE", "VELOZ_ENGINE_API_KEY_FILE"} <= set(files)
    for path in files.values():
        assert Path(path).exists(), path
    (tmp_path / "jwt_secret").write_text(STRONG_SECRET)
    settings = settings_from(env | files, monkeypatch)
    assert settings.auth_config().enabled
    redis = settings.redis_config()
    assert redis is not None and redis.master == "veloz-master"  # the runbooks' Sentinel name
    # The engine's PostgreSQL (users and keys, audit, history): the same URL.
    assert settings.database_url.startswith("postgresql://")
    assert secret["data"]["database_url"] == engine_secret["data"]["database_url"]
    assert env["VELOZ_DATABASE_URL_FILE"] == engine_env["VELOZ_DATABASE_URL_FILE"]
