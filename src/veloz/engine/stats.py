"""What the engine counts and times, kept as plain numbers; the metrics module exports
them when Prometheus scrapes, so the order path pays no metrics library."""

from collections import Counter
from dataclasses import dataclass, field

from veloz.histogram import LATENCY_BUCKETS, Histogram
from veloz.model.enums import OrderSide, OrderType


def _latency() -> Histogram:
    return Histogram(LATENCY_BUCKETS)


@dataclass(slots=True)
class EngineStats:
    rejections: Counter[str] = field(default_factory=Counter)  # refused before the book
    invalid_reports: int = 0  # venue reports that contradicted an order's state
    orders_taken: Counter[tuple[OrderSide, OrderType]] = field(default_factory=Counter)
    fills_by_side: Counter[OrderSide] = field(default_factory=Counter)
    trades_closed: int = 0  # fills that realised PnL
    trades_won: int = 0  # ... with a profit
    order_latency: Histogram = field(default_factory=_latency)  # submit -> durable ack
    risk_latency: Histogram = field(default_factory=_latency)  # the pre-trade decision
    venue_latency: Histogram = field(default_factory=_latency)  # handed over -> first answer
