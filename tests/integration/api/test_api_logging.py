"""Log lines written while a request is handled carry its request id and route; the id is
echoed back so a caller can find its request in the logs."""

import io
import json
import logging
from collections.abc import Iterator

import pytest

from veloz.observability.logs import configure_logging


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


async def test_request_context_is_bound_and_the_id_echoed(api, log_lines):
    answer = await api.post("/api/admin/readonly", headers={"X-Request-ID": "req-42"})
    assert answer.status_code == 200 and answer.headers["x-request-id"] == "req-42"
    audit = [
        json.loads(line) for line in log_lines.getvalue().splitlines() if '"veloz.audit"' in line
    ]
    assert len(audit) == 1
    assert audit[0]["request_id"] == "req-42" and audit[0]["route"] == "/api/admin/readonly"
    assert audit[0]["method"] == "POST" and audit[0]["level"] == "info"


async def test_a_missing_or_unusable_request_id_is_replaced(api):
    generated = (await api.get("/health", headers={"X-Request-ID": "bad id\n"})).headers
    assert len(generated["x-request-id"]) == 32 and " " not in generated["x-request-id"]


def test_debug_is_for_veloz_lines_not_the_libraries_chatter():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging("debug", stream=stream)
    try:
        logging.getLogger("veloz.market.binance_ws").debug("book synced")
        logging.getLogger("watchfiles.main").debug("1 change detected")
        logging.getLogger("faker.factory").debug("Not in REPLACEMENTS")
        logging.getLogger("watchfiles.main").warning("watch failed")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    text = stream.getvalue()
    assert "book synced" in text and "watch failed" in text
    assert "change detected" not in text and "REPLACEMENTS" not in text
