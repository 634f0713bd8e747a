"""The alert rules and dashboards: promtool and amtool accept the rules, the Prometheus and
Alertmanager configs and the routing; the rule unit tests pass; and every metric a rule,
recording rule or dashboard query uses exists on a running engine's /metrics."""

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.tools import tool
from veloz.config import Settings
from veloz.persistence.redis_events import RedisConfig, RedisPublisher
from veloz.persistence.service import HistoryConfig
from veloz.runtime.gateway.metrics import GatewayCollector
from veloz.runtime.gateway.service import gateway_parts
from veloz.runtime.history import attach_history
from veloz.runtime.service import service_app

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "tests" / "alerts_test.yml"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
HANDBOOK = {
    "VelozGatewayDown",
    "VelozWebSocketDisconnected",
    "VelozCriticalDrawdown",
    "VelozHighDrawdown",
    "VelozVaRBreach",
    "VelozHighLatency",
    "VelozHighErrorRate",
    "VelozHighLeverage",
    "VelozMemoryPressure",
    "VelozHighConcentration",
    "VelozLowWinRate",
    "VelozWalCorruption",
    "VelozMarketDataStale",
    # Beyond the handbook: the history store, the exchange, Redis and the gateways.
    "VelozStoreDown",
    "VelozStoreLagging",
    "VelozExchangeBanned",
    "VelozOrphanOrders",
    "VelozRedisLagging",
    "VelozGatewayLagging",
    "VelozGatewayAuditStuck",
}


def run(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_promtool_accepts_the_rules_and_config_and_the_rule_tests_pass():
    promtool = tool("promtool", "prometheus")
    run(promtool, "check", "rules", str(RULES))
    run(promtool, "test", "rules", str(RULE_TESTS))
    run(promtool, "check", "config", str(RULES.parent / "prometheus.yml"))


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["priority=P1", "severity=critical"], "paging-critical"),
        (["priority=P2", "severity=warning"], "paging"),
        (["priority=P3", "severity=info"], "chat"),
        (["priority=P4", "severity=info"], "chat"),
    ],
)
def test_alertmanager_pages_p1_and_p2_and_sends_the_rest_to_chat(labels, receiver):
    amtool = tool("amtool", "prometheus-alertmanager")
    config = str(ROOT / "deploy" / "alertmanager" / "alertmanager.yml")
    run(amtool, "check-config", config)
    routed = run(amtool, "config", "routes", "test", f"--config.file={config}", *labels)
    assert routed.split() == [receiver]


def test_every_handbook_alert_exists_with_severity_and_runbook():
    alerts = {rule["alert"]: rule for rule in rules() if "alert" in rule}
    assert set(alerts) == HANDBOOK
    runbooks = (ROOT / "docs" / "operations" / "alerts.md").read_text().lower()
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
        assert rule["labels"]["priority"] in ("P1", "P2", "P3", "P4"), name
        anchor = rule["annotations"]["runbook_url"].split("#")[1]
        assert f"## {name.lower()}" in runbooks and anchor == name.lower(), name


def dashboard_queries() -> list[str]:
    queries = []
    for path in sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        assert board["uid"] and board["title"] and board["panels"], path.name
        for panel in board["panels"]:
            assert panel["targets"], f"{path.name}: {panel['title']} has no query"
            queries += [target["expr"] for target in panel["targets"]]
    return queries


async def test_every_metric_the_rules_and_dashboards_use_exists_on_the_engine(engine, tmp_path):
    # An engine with a history store and a Redis publisher, so their metrics are there
    # too; and a gateway's collector (nothing in either connects to anything here).
    history = attach_history(HistoryConfig(url=f"sqlite:///{tmp_path / 'h.db'}"), engine)
    redis = RedisConfig(url="redis://127.0.0.1:1/0")
    engine.redis = RedisPublisher(redis, tmp_path / "wal", lambda: None)
    app = service_app(engine, Settings(market_symbol="BTCUSDT,ETHUSDT"), history)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://veloz.test") as api:
        await api.get("/health")  # so the HTTP metrics have a series
        metrics_text = (await api.get("/metrics")).text
    gateway, limit = gateway_parts(
        Settings(engine_url="http://127.0.0.1:1", redis_url=redis.url), redis
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(gateway, limit))
    metrics_text += generate_latest(registry).decode()
    await gateway.link.close()
    exposed: set[str] = set()
    for family in text_string_to_metric_families(metrics_text):
        # A family is declared even before it has a series (a counter by reason before
        # the first denial), and its samples carry the suffixes queries use.
        exposed.add(family.name)
        exposed |= {f"{family.name}{suffix}" for suffix in SUFFIXES.get(family.type, ())}
        exposed |= {sample.name for sample in family.samples}
    expressions = [rule["expr"] for rule in rules()] + dashboard_queries()
    used = {name for expr in expressions for name in re.findall(r"\bveloz_[a-z0-9_]+", expr)}
    assert len(used) > 30 and used <= exposed, sorted(used - exposed)
