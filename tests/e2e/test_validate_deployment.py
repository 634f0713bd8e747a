"""`scripts/validate_deployment.sh`, as the deployment runbook runs it after a release:
against a running `veloz engine` every step passes and the exit is 0; against one that is
not ready the first failing step is named and the exit is 1; a target it cannot resolve
is exit 2. Against a gateway (a fake one here, answering like the contract of
`veloz gateway`), its engine link and its event stream are steps of their own."""

import subprocess
import urllib.request
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.e2e.test_service_mode import wait_until_serving
from tests.support.processes import (
    SHIPPED_RISK_LIMITS,
    eventually,
    free_port,
    start_veloz,
    veloz_env,
)
from veloz.cli.validate import _run

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "validate_deployment.sh"


def validate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=120, check=False, env=env
    )


@pytest.fixture
def engine(tmp_path: Path, request: pytest.FixtureRequest):
    port = free_port()
    extra = getattr(request, "param", {})
    process = start_veloz(
        ["engine", "--port", str(port), "--host", "127.0.0.1"],
        veloz_env(tmp_path / "wal", **extra),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until_serving(port, process)
    yield port
    process.terminate()
    process.wait(20)


# With the shipped limits the test order must sit inside their 10 % price band.
@pytest.mark.slow
@pytest.mark.parametrize(
    "engine",
    # A small account, so that the sim market's moves stay under the breaker's loss limit.
    [
        {},
        {
            "VELOZ_RISK_LIMITS_FILE": str(SHIPPED_RISK_LIMITS),
            "VELOZ_SIM_BALANCES": "USDT=100000,BTC=1",
        },
    ],
    ids=["open-limits", "shipped-limits"],
    indirect=True,
)
def test_every_step_passes_against_a_running_engine(engine):
    done = validate(f"http://127.0.0.1:{engine}", "--symbol", "BTCUSDT")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    steps = [line.split()[1] for line in lines if line.startswith("ok ")]
    assert steps == ["health", "ready", "startup", "metrics", "market", "order", "sse", "websocket"]
    assert "then CANCELLED" in done.stdout and lines[-1] == "all checks passed"


@pytest.mark.slow
def test_an_environment_name_reads_its_url_and_a_failure_is_named(engine):
    maintenance = urllib.request.Request(
        f"http://127.0.0.1:{engine}/api/admin/maintenance", method="POST"
    )
    urllib.request.urlopen(maintenance, timeout=5).close()
    env = veloz_env(Path("/nonexistent"), VELOZ_STAGING_URL=f"http://127.0.0.1:{engine}")
    done = validate("staging", env=env)
    assert done.returncode == 1, done.stdout
    assert done.stdout.splitlines()[-1].startswith("FAIL ready: GET /health/ready answered 503")
    assert "step 'ready'" in done.stderr


@pytest.mark.slow
def test_a_target_it_cannot_resolve_is_exit_2():
    done = validate("nowhere", env=veloz_env(Path("/nonexistent")))
    assert done.returncode == 2 and "VELOZ_NOWHERE_URL is not set" in done.stderr


# A gateway ------------------------------------------------------------------------------

OK_COMPONENTS: dict[str, dict[str, Any]] = {
    "engine": {"ok": True, "status": "ok", "detail": "http://engine:8080 answered in 2 ms"},
    "stream": {"ok": True, "status": "ok", "detail": "lag 0 entries, at seq 1234"},
}


SEEN = web.AppKey("seen", list[str])  # the paths asked for, in order


def fake_target(readiness: dict[str, Any], ready_status: int = 200) -> web.Application:
    """Answers every route the validator reads (no order: it runs with skip_order) the way
    an engine or a gateway does, with `readiness` as the body of /health/ready."""
    seen: list[str] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        seen.append(request.path)
        response: web.StreamResponse = await handler(request)
        return response

    async def probe(_: web.Request) -> web.Response:
        return web.json_response({"ok": True, "status": "ok"})

    async def ready(_: web.Request) -> web.Response:
        return web.json_response(readiness, status=ready_status)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text="veloz_gateway_stream_lag_entries 0\nveloz_up 1\n")

    async def market(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "bid": "50000.00", "ask": "50000.10"})

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'id: 1234\nevent: market\ndata: {"bid": "50000.00"}\n\n')
        return response

    async def ws_market(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive_json()  # the subscription
        await ws.send_json({"type": "book_top", "symbol": "BTCUSDT"})
        await ws.close()
        return ws

    app = web.Application(middlewares=[record])
    app[SEEN] = seen
    app.router.add_get("/health", probe)
    app.router.add_get("/health/startup", probe)
    app.router.add_get("/health/ready", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/market", market)
    app.router.add_get("/api/stream", stream)
    app.router.add_get("/ws/market", ws_market)
    return app


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    servers: list[TestServer] = []

    async def start(app: web.Application) -> str:
        server = TestServer(app, host="127.0.0.1")  # a free port on loopback
        await server.start_server()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        await server.close()


async def validate_in_process(base: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    code = await _run(base, None, "BTCUSDT", Decimal("0.001"), skip_order=True, step_s=5)
    return code, capsys.readouterr()


def steps_of(stdout: str) -> list[str]:
    return [line[5:].split(" (")[0] for line in stdout.splitlines() if line.startswith("ok ")]


def gateway_readiness(**components: dict[str, Any]) -> dict[str, Any]:
    return {
        "ok": all(c["ok"] for c in components.values()),
        "served_by": "gateway",
        "phase": "RUNNING",
        "mode": "NORMAL",
        "components": components,
    }


async def test_a_ready_gateway_passes_with_its_engine_link_and_stream_as_steps(serve, capsys):
    app = fake_target(gateway_readiness(**OK_COMPONENTS))
    code, out = await validate_in_process(await serve(app), capsys)
    assert code == 0, out.out + out.err
    assert steps_of(out.out) == [
        "health",
        "gateway engine",
        "gateway stream",
        "ready",
        "startup",
        "metrics",
        "market",
        "sse stream",
        "websocket",
    ]
    lines = out.out.splitlines()
    assert lines[0].endswith("(a gateway)")
    engine_line = next(line for line in lines if line.startswith("ok   gateway engine"))
    assert engine_line.endswith(": ok: http://engine:8080 answered in 2 ms")
    assert lines[-1] == "all checks passed"


async def test_a_gateway_without_its_engine_fails_at_that_step(serve, capsys):
    down = {"ok": False, "status": "unreachable", "detail": "http://engine:8080: connect refused"}
    app = fake_target(gateway_readiness(engine=down, stream=OK_COMPONENTS["stream"]), 503)
    code, out = await validate_in_process(await serve(app), capsys)
    assert code == 1
    assert steps_of(out.out) == ["health"]
    assert out.out.splitlines()[-1] == (
        "FAIL gateway engine: the gateway's engine link is not ok (/health/ready 503): "
        "unreachable: http://engine:8080: connect refused"
    )
    assert "step 'gateway engine'" in out.err
    # Stopped there: nothing after the failing step was asked for.
    assert "/api/market" not in app[SEEN] and "/health/startup" not in app[SEEN]


async def test_a_gateway_behind_on_the_stream_fails_at_the_stream_step(serve, capsys):
    behind = {"ok": False, "status": "lagging", "detail": "5000 entries behind"}
    app = fake_target(gateway_readiness(engine=OK_COMPONENTS["engine"], stream=behind), 503)
    code, out = await validate_in_process(await serve(app), capsys)
    assert code == 1
    assert steps_of(out.out) == ["health", "gateway engine"]
    assert out.out.splitlines()[-1] == (
        "FAIL gateway stream: the gateway's event stream is not ok (/health/ready 503): "
        "lagging: 5000 entries behind"
    )


async def test_a_gateway_that_does_not_report_a_component_fails(serve, capsys):
    app = fake_target(gateway_readiness(engine=OK_COMPONENTS["engine"]))
    code, out = await validate_in_process(await serve(app), capsys)
    assert code == 1
    assert out.out.splitlines()[-1] == (
        "FAIL gateway stream: the gateway's /health/ready (200) reports no `stream`"
    )


async def test_an_engine_gets_no_gateway_steps(serve, capsys):
    engine_readiness = {
        "ok": True,
        "phase": "RUNNING",
        "mode": "NORMAL",
        "components": {"journal": {"ok": True, "status": "ok"}},
    }
    code, out = await validate_in_process(await serve(fake_target(engine_readiness)), capsys)
    assert code == 0, out.out
    assert steps_of(out.out) == [
        "health",
        "ready",
        "startup",
        "metrics",
        "market",
        "sse stream",
        "websocket",
    ]
    assert "gateway" not in out.out


async def test_a_target_whose_ready_is_not_json_fails_at_ready_as_before(serve, capsys):
    async def health(_: web.Request) -> web.Response:
        return web.json_response({"ok": True, "status": "ok"})

    async def no_upstream(_: web.Request) -> web.Response:  # a proxy with nothing behind it
        return web.Response(status=502, text="Bad Gateway")

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/health/ready", no_upstream)
    code, out = await validate_in_process(await serve(app), capsys)
    assert code == 1
    assert out.out.splitlines()[-1] == "FAIL ready: GET /health/ready answered 502: Bad Gateway"
    assert steps_of(out.out) == ["health"]


@pytest.mark.slow
def test_every_step_passes_against_a_real_gateway_and_a_lost_engine_is_named(tmp_path):
    """`veloz gateway` in front of a real engine over a private Redis: the runbook's
    validation passes through it (the order round trip forwarded to the engine), with
    the gateway's two steps; the engine stopped, the gateway's engine step fails."""
    from tests.support.gateways import cluster, get  # noqa: PLC0415
    from tests.support.redis import private_redis  # noqa: PLC0415

    with private_redis(tmp_path / "redis") as redis, cluster(tmp_path, redis, gateways=1) as c:
        done = validate(c.bases[0], "--symbol", "BTCUSDT")
        assert done.returncode == 0, done.stdout + done.stderr
        assert steps_of(done.stdout) == [
            "health",
            "gateway engine",
            "gateway stream",
            "ready",
            "startup",
            "metrics",
            "market",
            "order round trip",
            "sse stream",
            "websocket",
        ]
        assert "then CANCELLED" in done.stdout
        c.engine.stop()
        eventually(lambda: get(c.bases[0], "/health/ready").status_code == 503, 15, "not ready")
        done = validate(c.bases[0], "--symbol", "BTCUSDT", "--timeout", "5")
        assert done.returncode == 1, done.stdout
        assert done.stdout.splitlines()[-1].startswith(
            "FAIL gateway engine: the gateway's engine link is not ok (/health/ready 503)"
        ), done.stdout
