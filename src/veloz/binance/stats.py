"""Plain counters the Binance adapters keep and the metrics export: requests and errors
by endpoint, and how long each took."""

from collections import defaultdict
from dataclasses import dataclass, field

from veloz.histogram import LATENCY_BUCKETS, Histogram


def _latency() -> Histogram:
    return Histogram(LATENCY_BUCKETS)


@dataclass
class RestStats:
    requests: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # (endpoint, what went wrong: Binance's code, "http_503", "timeout", "connection").
    errors: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    latency: dict[str, Histogram] = field(default_factory=lambda: defaultdict(_latency))
    # The newest refusal per endpoint, as text (never a secret), for health and logs.
    last_error: dict[str, str] = field(default_factory=dict)
    # Binance's refusal of the API key on the newest signed call (None once one succeeds).
    key_refused: str | None = None
    time_offset_ms: int = 0
    time_syncs: int = 0
