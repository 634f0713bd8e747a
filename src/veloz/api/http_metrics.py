"""HTTP metrics: `veloz_http_requests_total{method,route,status}` and
`veloz_http_request_duration_seconds{method,route}`. Routes are labelled by their template
(`/api/market/{symbol}/book`), so label values stay bounded; label children are bound once
per (method, route, status) and reused, which keeps the per-request cost small."""

import time

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Histogram
from prometheus_client.registry import CollectorRegistry

DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class HttpMetrics(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, registry: CollectorRegistry) -> None:
        self._requests = Counter(
            "veloz_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=registry,
        )
        self._duration = Histogram(
            "veloz_http_request_duration_seconds",
            "HTTP request handling time",
            ["method", "route"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self._counters: dict[tuple[str, str, int], Counter] = {}
        self._timers: dict[tuple[str, str], Histogram] = {}

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        started = time.perf_counter()
        status = 500  # an exception that escapes before a response start is a server error

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await next_app(scope, receive, recording_send)
        finally:
            method = str(scope.get("method", "GET"))
            route = str(scope.get("path_template", "unmatched"))
            self._count(method, route, status).inc()
            self._timer(method, route).observe(time.perf_counter() - started)

    def _count(self, method: str, route: str, status: int) -> Counter:
        key = (method, route, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self._requests.labels(method, route, str(status))
        return counter

    def _timer(self, method: str, route: str) -> Histogram:
        key = (method, route)
        timer = self._timers.get(key)
        if timer is None:
            timer = self._timers[key] = self._duration.labels(method, route)
        return timer
