"""Contract suites live in plain modules (not test files) that venue test modules import,
so pytest would not rewrite their asserts by itself; registering them keeps pytest's
detailed assertion messages in the shared test methods.

The store suites share one `store` fixture: each test runs on SQLite and on a fresh
database on the local PostgreSQL (in CI a missing server fails, tests/support/postgres.py)."""

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from veloz.persistence.postgres import PostgresStore
from veloz.persistence.sqlite import SqliteStore
from veloz.persistence.store import Store

pytest.register_assert_rewrite("tests.contract.venue_contract")


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    chosen: Store  # both protocols: mypy checks that each store implements them
    if request.param == "sqlite":
        chosen = SqliteStore(str(tmp_path / "veloz.db"), time.time_ns)
    else:
        chosen = PostgresStore(request.getfixturevalue("pg_url"), time.time_ns)
    await chosen.connect()
    await chosen.migrate()
    yield chosen
    await chosen.close()
