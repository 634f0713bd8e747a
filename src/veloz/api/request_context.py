"""Request context for the logs: every line logged while a request is handled carries its
`request_id` (the caller's `X-Request-ID`, or a new one, echoed back in the answer), the
method and the route; order routes add the client order id and symbol."""

import re
import uuid

import structlog
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

_ACCEPTABLE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestContext(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        given = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _ACCEPTABLE_ID.fullmatch(given) else uuid.uuid4().hex

        async def answer_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableScopeHeaders.from_message(message)["x-request-id"] = request_id
            await send(message)

        with structlog.contextvars.bound_contextvars(
            request_id=request_id,
            method=str(scope.get("method", "")),
            route=str(scope.get("path_template", scope.get("path", ""))),
        ):
            await next_app(scope, receive, answer_with_id)
