"""The container and Kubernetes files, checked offline (there is no Docker engine and no
cluster here): the Dockerfile's stages and properties (and BuildKit's own parser), its
HEALTHCHECK against a real engine, docker-compose.yml against the Compose Specification
schema and `docker-compose config`, the kustomize overlays rendered by `kubectl kustomize`
and validated against Kubernetes' schemas, and every file's VELOZ_* settings through the
engine's own settings loader."""

import base64
import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.test_service_mode import wait_until_serving
from tests.support.processes import free_port, start_veloz, veloz_env
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


def compose_healthcheck_command(port: int) -> list[str]:
    test = yaml.safe_load(COMPOSE.read_text())["services"]["engine"]["healthcheck"]["test"]
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
    assert engine["ports"] == ["127.0.0.1:8080:8080/tcp"]  # loopback unless VELOZ_BIND says
    # The env file is read and merged with the service's own environment.
    assert engine["environment"]["VELOZ_PRESET"] == "release"
    assert engine["environment"]["VELOZ_JWT_SECRET_FILE"] == "/run/secrets/jwt_secret"


def test_compose_services_volumes_and_healthchecks():
    spec = compose()
    services = spec["services"]
    assert {"engine", "postgres", "redis", "prometheus", "alertmanager", "grafana"} <= set(services)
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
        for static in job["static_configs"]
        for target in static["targets"]
    ] + prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    for target in targets:
        assert target.split(":")[0] in names, target
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


def test_compose_engine_settings_pass_the_settings_loader(monkeypatch, tmp_path):
    """The image's ENV, then the env_file, then the service's environment, with secret
    files such as deploy/docker/secrets/README.md tells how to make."""
    runtime = stages(DOCKERFILE)[-1]
    env = env_pairs(" ".join(rest for word, rest in runtime if word == "ENV"))
    engine = compose()["services"]["engine"]
    for line in (ROOT / engine["env_file"][0]).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    secrets = {
        "jwt_secret": STRONG_SECRET,
        "admin_password": "a0b1c2d3e4f5a6b7",
        "database_url": "postgresql://veloz:pw@postgres:5432/veloz",
    }
    for key, value in engine["environment"].items():
        name = value.removeprefix("/run/secrets/")
        (tmp_path / name).write_text(secrets[name])
        env[key] = str(tmp_path / name)
    veloz = {k: v for k, v in env.items() if k.startswith("VELOZ_")}
    settings = settings_from(veloz, monkeypatch)
    assert settings.database_url.startswith("postgresql://veloz:")
    assert settings.auth_config().enabled and settings.port == 8080


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
    pdb = one(docs, "PodDisruptionBudget")["spec"]
    assert selects(pdb["selector"]["matchLabels"])
    assert pdb["maxUnavailable"] == (1 if overlay == "staging" else 0)
    policy = one(docs, "NetworkPolicy")["spec"]
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
    keys = {"jwt_secret", "admin_password"} | (
        {"database_url"} if overlay == "production" else set()
    )
    assert set(secret["data"]) == keys
    for key in keys:
        on_disk = (K8S / "overlays" / overlay / "secrets" / key).read_bytes()
        assert base64.b64decode(secret["data"][key]) == on_disk
        assert b"changeme-placeholder" in on_disk  # never a real secret in git
    limits = one(docs, "ConfigMap", "veloz-risk-limits")
    assert volumes["risk-limits"]["configMap"]["name"] == limits["metadata"]["name"]
    assert limits["data"]["risk_limits.yaml"] == (ROOT / "config/risk_limits.yaml").read_text()
    assert (K8S / "base/risk_limits.yaml").read_bytes() == (
        ROOT / "config/risk_limits.yaml"
    ).read_bytes()


def test_rendered_settings_load_and_placeholders_refuse_to_start(rendered, monkeypatch, tmp_path):
    overlay, _, docs = rendered
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
    if overlay == "production":
        assert settings.database_url.startswith("postgresql://")
    else:
        assert settings.database_url == "sqlite:////var/lib/veloz/data/veloz.db"
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
    assert [d for d in after if d["kind"] != "StatefulSet"] == [
        d for d in before if d["kind"] != "StatefulSet"
    ]
