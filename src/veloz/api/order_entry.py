"""Order entry's fast lane: `POST /api/order` with a JSON body answered by the route's own
middleware, without Litestar's per-request machinery (the request object, dependency
resolution, the handler's signature model and the response object). That machinery cost
an order about a third of its CPU on the engine's one core (bench/README.md, P2).

What stays the route's: routing and the path template, the app's middlewares (request id
and log context, HTTP metrics, access control with its rate limits and audit record), the
documented schema, and the handler itself for a form body. The answers are the handler's:
the same `place_order`, the same encoding, and errors as the app's exception handlers
answer them (`errors.domain_answer`, `errors.http_answer`).
"""

import logging
import sys
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPResponseStartEvent, Receive, Scope, Send

from veloz.api.body import is_form, json_fields
from veloz.api.errors import ErrorAnswer, ErrorBody, domain_answer, http_answer
from veloz.api.headers import header_pairs, request_header
from veloz.codec import encode_json
from veloz.engine.client import EngineClient
from veloz.engine.views.orders import OrderAnswer
from veloz.model.commands import parse_submit_order
from veloz.model.errors import ErrorCode, VelozError

logger = logging.getLogger(__name__)

_JSON = (b"content-type", b"application/json")


async def place_order(engine_client: EngineClient, fields: dict[str, Any]) -> OrderAnswer:
    """Place the order a body's fields describe; answered once it is durable."""
    command = parse_submit_order(fields)
    structlog.contextvars.bind_contextvars(
        client_order_id=command.client_order_id, symbol=command.symbol
    )
    placed = await engine_client.submit_order(command)
    return OrderAnswer.of(placed.order)


class _Disconnected(Exception):
    """The client left before its body arrived: nobody to answer."""


class OrderEntry(ASGIMiddleware):
    """On `place`, the order route's handler; the app sets `state.engine_client`
    (`create_app`), and the body limit is the route's own, as Litestar resolves it."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if is_form(request_header(scope, b"content-type")):
            await next_app(scope, receive, send)
            return
        route: HTTPRouteHandler = scope["route_handler"]  # type: ignore[assignment]  # POST
        limit = route.resolve_request_max_body_size()
        try:
            body = await _read_body(scope, receive, limit)
            answer = await place_order(scope["litestar_app"].state.engine_client, json_fields(body))
        except _Disconnected:
            return
        except VelozError as exc:
            await _answer_error(send, domain_answer(exc))
            return
        except HTTPException as exc:
            await _answer_error(send, http_answer(exc))
            return
        except Exception:
            # What Litestar's handler would have caught: logged with its traceback here,
            # answered in the API's error shape.
            logger.exception("POST /api/order failed")
            internal = ErrorBody(ErrorCode.INTERNAL_ERROR, "internal error")
            await _answer_error(send, ErrorAnswer(500, internal, {}))
            return
        await _answer(send, 200, encode_json(answer))


async def _read_body(scope: Scope, receive: Receive, limit: int | None) -> bytes:
    """The whole body, refused as Litestar refuses it when it is over `limit` (None: no
    limit)."""
    if limit is None:
        limit = sys.maxsize
    announced = request_header(scope, b"content-length")
    if announced.isdigit() and int(announced) > limit:
        raise RequestEntityTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk: bytes = message.get("body", b"")  # type: ignore[assignment]
        size += len(chunk)
        if size > limit:
            raise RequestEntityTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer_error(send: Send, error: ErrorAnswer) -> None:
    await _answer(send, error.status, encode_json(error.body), header_pairs(error.headers))


async def _answer(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": [_JSON, (b"content-length", str(len(body)).encode()), *(extra or ())],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})
