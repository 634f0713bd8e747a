"""The Binance venue's counters, as plain numbers the metrics module reads (the venue
imports no metrics library)."""

from dataclasses import dataclass, field

from veloz.histogram import LATENCY_BUCKETS, Histogram


def _latency() -> Histogram:
    return Histogram(LATENCY_BUCKETS)


@dataclass
class VenueStats:
    # The user data stream is subscribed and delivering events.
    user_stream_connected: bool = False
    # Subscriptions made after the first one (drops, 24-hour rotations, server shutdowns).
    reconnects: int = 0
    # Open orders are being polled over REST because the stream is down.
    polling: bool = False
    # Orders and cancels whose outcome Binance left unknown (timeout, 5xx, drop, -1007)...
    unknown_outcomes: int = 0
    # ... and the ones settled by querying their client order id.
    resolved_by_query: int = 0
    # Messages from Binance we could not read (counted, logged once).
    malformed: int = 0
    # Requests refused with 429 and sent again once the limiter allowed.
    rate_limited: int = 0
    # Orders refused without being sent because the IP was banned (418).
    refused_while_banned: int = 0
    stream_events: int = 0
    # The newest failure per endpoint ("/api/v3/order", "ws-api"), as text without secrets.
    last_error: dict[str, str] = field(default_factory=dict)
    # Round trip of POST /api/v3/order, in seconds: veloz_latency_seconds{stage="venue"}.
    submit_latency: Histogram = field(default_factory=_latency)
