"""`GET /api/config`: the effective configuration, secrets masked."""

from typing import Any

from litestar import Controller, get

from veloz.api.deps import Config
from veloz.api.errors import error_responses


class ConfigController(Controller):
    path = "/api/config"
    tags = ["config"]

    @get(
        "/",
        summary="Effective configuration; secrets are shown as ***",
        responses=error_responses(),
    )
    async def config(self, settings: Config) -> dict[str, Any]:
        return settings.public_view()
