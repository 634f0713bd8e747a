"""Queries: what a reader may ask about orders, fills and the audit trail, answered from
memory and the history store alike. Newest first; `before_ts_ns` pages backwards."""

import msgspec

from veloz.model.enums import FINAL_STATUSES, OPEN_STATUSES, OrderStatus
from veloz.model.errors import CommandRejected


class OrderQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Orders by creation time; `statuses` None means every status."""

    statuses: frozenset[OrderStatus] | None = None
    symbol: str | None = None
    limit: int | None = None
    before_ts_ns: int | None = None


class TradeQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Fills by fill time."""

    symbol: str | None = None
    client_order_id: str | None = None
    limit: int = 20
    before_ts_ns: int | None = None


class AuditQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Audit records by actor, action and a time window."""

    actor: str | None = None
    action: str | None = None
    since_ts_ns: int | None = None
    before_ts_ns: int | None = None
    limit: int = 100


def parse_status_filter(value: str | None) -> frozenset[OrderStatus] | None:
    """`open`, `final` or one status name (case-insensitive); None means every status."""
    if value is None or value == "":
        return None
    lowered = value.lower()
    if lowered == "open":
        return OPEN_STATUSES
    if lowered == "final":
        return FINAL_STATUSES
    try:
        return frozenset({OrderStatus(value.upper())})
    except ValueError:
        allowed = "open|final|" + "|".join(OrderStatus)
        raise CommandRejected(f"status must be one of {allowed}") from None
