"""Every route that asks the engine answers with a view the facade declares
(`veloz.engine.views`), not a shape of its own; every route body is a Struct."""

import asyncio
import time
from typing import Any, get_args, get_origin

import msgspec
import pytest
from litestar import Litestar, Response
from litestar.handlers import HTTPRouteHandler

from veloz.api.app import create_app
from veloz.auth.service import AuthConfig, AuthService
from veloz.engine.client import EngineClient

# Answers that are not JSON resources: Prometheus text, the event stream and the
# gateways' feed, static files, and the configuration (a mapping of settings, secrets
# masked).
NOT_STRUCTS = {
    "GET /metrics",
    "GET /api/stream",
    "GET /api/internal/feed",
    "GET /api/config",
    # A research job's HTML report and an optimisation's results table (CSV).
    "GET /api/backtests/{job_id:str}/report",
    "GET /api/optimizations/{job_id:str}/report",
    "GET /api/optimizations/{job_id:str}/results",
}


def _app() -> Litestar:
    # The routes are inspected, never called: the client is not used.
    client: EngineClient = object()  # type: ignore[assignment]
    auth = AuthService(AuthConfig(enabled=False), None, time.time_ns)
    return create_app(client, auth=auth, shutdown=asyncio.Event())


def _http_handlers(app: Litestar) -> list[tuple[str, HTTPRouteHandler]]:
    """Our routes (not Litestar's: OPTIONS, the schema pages, static files)."""
    found = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if isinstance(handler, HTTPRouteHandler) and handler.fn.__module__.startswith("veloz."):
                found.append((f"{sorted(handler.http_methods)[0]} {route.path}", handler))
    return found


def _answer_type(handler: HTTPRouteHandler) -> Any:
    answer = handler.parsed_fn_signature.return_type.annotation
    if get_origin(answer) is Response:
        (answer,) = get_args(answer)
    return answer


HANDLERS = _http_handlers(_app())


@pytest.mark.parametrize(("path", "handler"), HANDLERS, ids=[p for p, _ in HANDLERS])
def test_engine_routes_answer_with_declared_views(path, handler):
    if path in NOT_STRUCTS:
        return
    answer = _answer_type(handler)
    assert isinstance(answer, type) and issubclass(answer, msgspec.Struct), (path, answer)
    if "engine_client" in handler.parsed_fn_signature.parameters:
        assert answer.__module__.startswith("veloz.engine.views."), (path, answer)


def test_every_engine_route_is_checked():
    engine_routes = [
        path for path, h in HANDLERS if "engine_client" in h.parsed_fn_signature.parameters
    ]
    assert len(engine_routes) >= 25
