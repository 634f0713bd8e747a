"""Request context for the logs: every line logged while a request is handled carries its
`request_id` (the caller's `X-Request-ID`, or a new one, echoed back in the answer), the
method and the route; order routes add the client order id and symbol. The id is also
kept in the scope's state (`request_id_of`) for the audit record."""

import itertools
import re
import secrets

import structlog
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from veloz.api.headers import request_header, set_headers

_ACCEPTABLE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# A new id is this process's random prefix and a counter (32 hex digits, as a uuid4's):
# unique without a random read per request. Request ids name requests; they guard nothing.
_ID_PREFIX = secrets.token_hex(8)
_numbers = itertools.count()
_STATE_KEY = "request_id"


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_numbers):016x}"


def request_id_of(scope: Scope) -> str:
    return str(scope.get("state", {}).get(_STATE_KEY, ""))


class RequestContext(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        given = request_header(scope, b"x-request-id")
        request_id = given if _ACCEPTABLE_ID.fullmatch(given) else new_request_id()
        scope.setdefault("state", {})[_STATE_KEY] = request_id
        echoed = [(b"x-request-id", request_id.encode("latin-1"))]

        async def answer_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                set_headers(message, echoed)
            await send(message)

        with structlog.contextvars.bound_contextvars(
            request_id=request_id,
            method=str(scope.get("method", "")),
            route=str(scope.get("path_template", scope.get("path", ""))),
        ):
            await next_app(scope, receive, answer_with_id)
