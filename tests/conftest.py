"""Shared fixtures: engines on temporary journals with quotes driven by the test."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.engine import engine_config, quote
from veloz.runtime.live import LiveEngine

# PostgreSQL fixtures (a database on the local server, a throwaway cluster).
pytest_plugins = ["tests.support.postgres", "tests.support.s3"]


@pytest.fixture
def wal_dir(tmp_path: Path) -> Path:
    return tmp_path / "wal"


@pytest.fixture
async def engine(wal_dir: Path) -> AsyncIterator[LiveEngine]:
    running = LiveEngine(engine_config(wal_dir))
    await running.start()
    running.market.on_data(quote())
    running.market.on_data(quote("ETHUSDT", "3000", "3000.5", "50"))
    yield running
    await running.stop()
