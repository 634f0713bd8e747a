"""Headers our middlewares put on every answer, set on the ASGI start message directly:
Litestar's `MutableScopeHeaders` decodes and searches the whole list once per header,
which every request paid several times over (security headers, limits, request id)."""

from collections.abc import Sequence

from litestar.types import HTTPResponseStartEvent

HeaderPairs = Sequence[tuple[bytes, bytes]]


def set_headers(message: HTTPResponseStartEvent, pairs: HeaderPairs) -> None:
    """Set each of `pairs` (lower-case names) on `message`, replacing any header of the
    same name already there."""
    names = {name for name, _ in pairs}
    kept = [header for header in message.get("headers", ()) if header[0].lower() not in names]
    message["headers"] = [*kept, *pairs]


def header_pairs(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
