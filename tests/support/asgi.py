"""An HTTP request's ASGI scope, for tests that call an app directly to control what it
receives (a body in pieces, a client gone) or to watch what it sends, and when."""

from typing import Any


def http_scope(
    method: str,
    path: str,
    *headers: tuple[bytes, bytes],
    client: tuple[str, int] = ("127.0.0.1", 5000),
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"veloz.test"), *headers],
        "client": client,
        "server": ("veloz.test", 80),
        "state": {},
    }
