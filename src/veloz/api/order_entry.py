"""Order entry's fast lane: `POST /api/order` with a JSON body answered by the route's own
middleware, without Litestar's per-request machinery (the request object, dependency
resolution, the handler's signature model and the response object). That machinery cost
an order about a third of its CPU on the engine's one core (bench/README.md, P2).

What stays the route's: routing and the path template, the app's middlewares (request id
and log context, HTTP metrics, access control with its rate limits and audit record), the
documented schema, and the handler itself for a form body. The answers are the handler's:
the same parsing (`order_command`), the same encoding, and errors as the app's exception
handlers answer them (`errors.domain_answer`, `errors.http_answer`).
"""

import logging
import sys
from typing import Any

import structlog
from litestar.exceptions import HTTPException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.handlers import HTTPRouteHandler
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)

from veloz.api.body import is_form, json_fields
from veloz.api.errors import ErrorAnswer, ErrorBody, domain_answer, http_answer
from veloz.api.headers import header_pairs, request_header
from veloz.codec import encode_json
from veloz.engine.client import EngineClient
from veloz.engine.views.orders import OrderAnswer
from veloz.model.commands import SubmitOrder, parse_submit_order
from veloz.model.errors import ErrorCode, VelozError

logger = logging.getLogger(__name__)

_JSON = (b"content-type", b"application/json")


def order_command(fields: dict[str, Any]) -> SubmitOrder:
    """The order a body's fields describe, named in the request's log context."""
    command = parse_submit_order(fields)
    structlog.contextvars.bind_contextvars(
        client_order_id=command.client_order_id, symbol=command.symbol
    )
    return command


async def place_order(engine_client: EngineClient, fields: dict[str, Any]) -> OrderAnswer:
    """Place the order a body's fields describe; answered once it is durable."""
    placed = await engine_client.submit_order(order_command(fields))
    return OrderAnswer.of(placed.order)


class _Disconnected(Exception):
    """The client left before its body arrived: nobody to answer."""


class OrderEntry:
    """The order route's middleware: `OrderEntry()` in the route's `middleware`. The app
    sets `state.engine_client` (`create_app`), and the body limit is the route's own, as
    Litestar resolves it.

    A plain ASGI middleware rather than Litestar's `ASGIMiddleware`, whose per-request
    checks (scope type, excluded paths and opt keys) cannot apply to this one POST route,
    and each level of coroutine an order passes through is paid twice: on the way in and
    when it resumes once durable."""

    def __call__(self, app: ASGIApp) -> ASGIApp:  # Litestar passes `app=`
        async def order_entry(scope: Scope, receive: Receive, send: Send) -> None:
            if is_form(request_header(scope, b"content-type")):
                await app(scope, receive, send)
                return
            try:
                limit = _limit(scope)
                # Refused before a byte is read (no `100 Continue` for it either).
                announced = request_header(scope, b"content-length")
                if announced.isdigit() and int(announced) > limit:
                    raise RequestEntityTooLarge
                # Nearly always the whole body in one message.
                message = await receive()
                body: bytes = message.get("body", b"")  # type: ignore[assignment]
                if message["type"] != "http.request" or message.get("more_body", False):
                    body = await _read_rest(receive, message, limit)
                elif len(body) > limit:
                    raise RequestEntityTooLarge
                client: EngineClient = scope["litestar_app"].state.engine_client
                placed = await client.submit_order(order_command(json_fields(body)))
            except _Disconnected:
                return
            except VelozError as exc:
                await _answer_error(send, domain_answer(exc))
                return
            except HTTPException as exc:
                await _answer_error(send, http_answer(exc))
                return
            except Exception:
                # What Litestar's handler would have caught: logged with its traceback
                # here, answered in the API's error shape.
                logger.exception("POST /api/order failed")
                internal = ErrorBody(ErrorCode.INTERNAL_ERROR, "internal error")
                await _answer_error(send, ErrorAnswer(500, internal, {}))
                return
            answer = encode_json(OrderAnswer.of(placed.order))
            await send(_start(200, answer))
            await send(_body(answer))

        return order_entry


def _limit(scope: Scope) -> int:
    """The route's body limit, as Litestar resolves it (None there: no limit)."""
    route: HTTPRouteHandler = scope["route_handler"]  # type: ignore[assignment]  # POST
    limit = route.resolve_request_max_body_size()
    return sys.maxsize if limit is None else limit


async def _read_rest(receive: Receive, first: ReceiveMessage, limit: int) -> bytes:
    """The whole body from its `first` message on, refused as Litestar refuses one over
    the route's `limit`."""
    chunks: list[bytes] = []
    size = 0
    message = first
    while True:
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk: bytes = message.get("body", b"")  # type: ignore[assignment]
        size += len(chunk)
        if size > limit:
            raise RequestEntityTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
        message = await receive()


async def _answer_error(send: Send, error: ErrorAnswer) -> None:
    body = encode_json(error.body)
    await send(_start(error.status, body, header_pairs(error.headers)))
    await send(_body(body))


def _start(
    status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> HTTPResponseStartEvent:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [_JSON, (b"content-length", str(len(body)).encode()), *(extra or ())],
    }


def _body(body: bytes) -> HTTPResponseBodyEvent:
    return {"type": "http.response.body", "body": body, "more_body": False}
