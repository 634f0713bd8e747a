"""Health probes (public): `/health` while the process serves, `/health/live` while the
loop turns, `/health/startup` once replay and reconciliation are done, `/health/ready`
when the engine can trade."""

from typing import Any

from litestar import Controller, Response, get
from litestar.openapi.datastructures import ResponseSpec

from veloz.api.deps import Client, Config
from veloz.engine.views.health import Health, Probe, Readiness


def _answer(body: Probe | Readiness) -> Response[Any]:
    return Response(body, status_code=200 if body.ok else 503)


def _unavailable(body: type[Any]) -> dict[int, ResponseSpec]:
    return {503: ResponseSpec(data_container=body, description="Not (yet) live/started/ready")}


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("/", summary="The process is serving")
    async def health(self, engine_client: Client) -> Health:
        return await engine_client.health()

    @get("/live", summary="The event loop turns", responses=_unavailable(Probe))
    async def live(self, engine_client: Client) -> Response[Probe]:
        return _answer(await engine_client.liveness())

    @get(
        "/startup",
        summary="Journal replay and venue reconciliation have finished",
        responses=_unavailable(Probe),
    )
    async def startup(self, engine_client: Client) -> Response[Probe]:
        return _answer(await engine_client.startup())

    @get(
        "/ready",
        summary="Ready to trade, with each component's state",
        responses=_unavailable(Readiness),
    )
    async def ready(self, engine_client: Client, settings: Config) -> Response[Readiness]:
        return _answer(await engine_client.readiness(settings.symbols[0]))
