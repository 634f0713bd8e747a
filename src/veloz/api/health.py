"""Health probes (public): `/health` while the process serves, `/health/live` while the
loop turns, `/health/startup` once replay and reconciliation are done, `/health/ready`
when the engine can trade."""

import time
from typing import Any

import msgspec
from litestar import Controller, Response, get
from litestar.openapi.datastructures import ResponseSpec

from veloz import __version__
from veloz.api.deps import Client, Config
from veloz.observability.health import LIVE_LAG_LIMIT_S, Readiness, readiness


class Health(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    status: str
    version: str
    uptime_s: float
    phase: str
    mode: str


class Probe(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    status: str
    detail: str = ""


def _answer(body: Any, ok: bool) -> Response[Any]:
    return Response(body, status_code=200 if ok else 503)


def _unavailable(body: type[Any]) -> dict[int, ResponseSpec]:
    return {503: ResponseSpec(data_container=body, description="Not (yet) live/started/ready")}


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("/", summary="The process is serving")
    async def health(self, engine_client: Client) -> Health:
        engine = engine_client.engine
        return Health(
            ok=True,
            status="ok",
            version=__version__,
            uptime_s=round(time.time() - engine.started_ns / 1e9, 3),
            phase=engine.phase,
            mode=engine.mode,
        )

    @get("/live", summary="The event loop turns", responses=_unavailable(Probe))
    async def live(self, engine_client: Client) -> Response[Probe]:
        lag = engine_client.engine.loop_lag.current_lag_s()
        ok = lag < LIVE_LAG_LIMIT_S
        status = "ok" if ok else "stalled"
        return _answer(Probe(ok=ok, status=status, detail=f"loop lag {lag:.3f} s"), ok)

    @get(
        "/startup",
        summary="Journal replay and venue reconciliation have finished",
        responses=_unavailable(Probe),
    )
    async def startup(self, engine_client: Client) -> Response[Probe]:
        phase = engine_client.engine.phase
        ok = phase == "ready"
        return _answer(Probe(ok=ok, status=phase), ok)

    @get(
        "/ready",
        summary="Ready to trade, with each component's state",
        responses=_unavailable(Readiness),
    )
    async def ready(self, engine_client: Client, settings: Config) -> Response[Readiness]:
        report = readiness(engine_client.engine, settings.symbols[0], engine_client.history)
        return _answer(report, report.ok)
