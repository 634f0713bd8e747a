"""`GET /metrics` (public): the Prometheus text exposition of the app's registry."""

from litestar import Controller, Response, get
from litestar.datastructures import State
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


class MetricsController(Controller):
    path = "/metrics"
    tags = ["health"]
    include_in_schema = False  # text exposition, not a JSON resource

    @get("/", media_type=CONTENT_TYPE_LATEST)
    async def metrics(self, state: State) -> Response[bytes]:
        return Response(generate_latest(state.metrics), media_type=CONTENT_TYPE_LATEST)
