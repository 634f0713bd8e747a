"""An in-process client for the API routes (streams are tested against a real server)."""

from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from veloz.api.app import create_app
from veloz.config import Settings
from veloz.engine.client import EngineClient
from veloz.engine.kernel import Engine


@pytest.fixture
async def api(engine: Engine) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    settings = Settings(market_symbol="BTCUSDT,ETHUSDT", binance_api_secret="s3cr3t-value")
    app = create_app(EngineClient(engine), settings, max_body_bytes=4096)
    async with AsyncTestClient(app=app) as client:
        yield client
