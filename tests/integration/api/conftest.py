"""An in-process client for the API routes (streams are tested against a real server).

httpx's ASGI transport runs the app on the test's own event loop, where the engine runs;
Litestar's test client would run it on a portal thread with another loop."""

from collections.abc import AsyncIterator

import httpx
import pytest
from litestar import Litestar

from veloz.config import Settings
from veloz.runtime.live import LiveEngine
from veloz.runtime.service import service_app


class ApiClient(httpx.AsyncClient):
    app: Litestar


@pytest.fixture
async def api(engine: LiveEngine) -> AsyncIterator[ApiClient]:
    settings = Settings(market_symbol="BTCUSDT,ETHUSDT", binance_api_secret="s3cr3t-value")
    app = service_app(engine, settings, max_body_bytes=4096)
    async with ApiClient(
        # A standard ASGI app; the two libraries spell the ASGI types differently.
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        base_url="http://veloz.test",
    ) as client:
        client.app = app
        yield client
