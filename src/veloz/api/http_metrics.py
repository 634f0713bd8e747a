"""HTTP metrics: `veloz_http_requests_total{method,route,status}` and
`veloz_http_request_duration_seconds{method,route}`. Routes are labelled by their template
(`/api/market/{symbol}/book`), so label values stay bounded. The middleware only counts
into plain dicts (no locks, no label lookups per request); the collector turns them into
Prometheus families when Prometheus scrapes."""

import time
from collections import Counter
from collections.abc import Iterator

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from veloz.histogram import Histogram
from veloz.observability.metrics import Metric, prometheus_buckets

DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class HttpMetrics(ASGIMiddleware, Collector):
    scopes = (ScopeType.HTTP,)

    def __init__(self) -> None:
        self._requests: Counter[tuple[str, str, int]] = Counter()
        self._durations: dict[tuple[str, str], Histogram] = {}

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
            self._requests[(method, route, status)] += 1
            timer = self._durations.get((method, route))
            if timer is None:
                timer = self._durations[(method, route)] = Histogram(DURATION_BUCKETS)
            timer.observe(time.perf_counter() - started)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "veloz_http_requests", "HTTP requests answered", labels=["method", "route", "status"]
        )
        for (method, route, status), count in sorted(self._requests.items()):
            requests.add_metric([method, route, str(status)], count)
        yield requests
        durations = HistogramMetricFamily(
            "veloz_http_request_duration_seconds",
            "HTTP request handling time",
            labels=["method", "route"],
        )
        for (method, route), histogram in sorted(self._durations.items()):
            buckets, total = prometheus_buckets(histogram)
            durations.add_metric([method, route], buckets, total)
        yield durations
