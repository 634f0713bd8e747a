"""Headers read from the ASGI scope and put on the ASGI start message directly, the one
place our middlewares and the order fast lane do it: Litestar's `MutableScopeHeaders`
decodes and searches the whole list once per header, which every request paid several
times over (security headers, limits, request id)."""

from collections.abc import Sequence

from litestar.types import HTTPResponseStartEvent, Scope

HeaderPairs = Sequence[tuple[bytes, bytes]]


def request_header(scope: Scope, name: bytes) -> str:
    """One request header (`name` lower-case, as ASGI gives names), or "" without it."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


def request_headers(scope: Scope) -> dict[str, str]:
    """Every request header by lower-case name (the last of repeated ones)."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}


def set_headers(message: HTTPResponseStartEvent, pairs: HeaderPairs) -> None:
    """Set each of `pairs` (lower-case names) on `message`, replacing any header of the
    same name already there."""
    names = {name for name, _ in pairs}
    kept = [header for header in message.get("headers", ()) if header[0].lower() not in names]
    message["headers"] = [*kept, *pairs]


def header_pairs(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
