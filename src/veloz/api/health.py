"""Health probes (public): `/health` while the process serves."""

import time

from litestar import Controller, get

from veloz import __version__
from veloz.engine.client import EngineClient


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("/", summary="The process is serving")
    async def health(self, engine_client: EngineClient) -> dict[str, object]:
        engine = engine_client.engine
        return {
            "ok": True,
            "status": "ok",
            "version": __version__,
            "uptime_s": round(time.time() - engine.started_ns / 1e9, 3),
            "phase": engine.phase,
            "mode": engine.mode,
        }
