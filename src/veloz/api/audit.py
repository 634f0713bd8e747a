"""`GET /api/audit/logs`: the audit trail from the history store, newest first (admin)."""

from typing import Annotated, Any

import msgspec
from litestar import Controller, get
from litestar.params import QueryParameter

from veloz.api.deps import Client
from veloz.api.errors import MAX_TS_NS, error_responses
from veloz.model.errors import CommandRejected
from veloz.persistence.store import AuditQuery, StoreUnavailable


class AuditItem(msgspec.Struct, frozen=True, kw_only=True):
    ts_ns: int
    actor: str
    action: str
    target: str
    params: dict[str, Any]
    result: str
    client_ip: str
    request_id: str


class AuditLog(msgspec.Struct, frozen=True):
    count: int
    items: list[AuditItem]


class AuditController(Controller):
    path = "/api/audit"
    tags = ["admin"]

    @get("/logs", summary="Audit records, newest first", responses=error_responses(503))
    async def logs(
        self,
        *,
        engine_client: Client,
        actor: Annotated[str | None, QueryParameter(description="e.g. user:admin")] = None,
        action: Annotated[str | None, QueryParameter(description="e.g. POST /api/order")] = None,
        since: Annotated[
            int | None, QueryParameter(description="at or after this ts_ns", ge=0, le=MAX_TS_NS)
        ] = None,
        before: Annotated[
            int | None, QueryParameter(description="before this ts_ns", ge=0, le=MAX_TS_NS)
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=10_000)] = 100,
    ) -> AuditLog:
        history = engine_client.history
        if history is None:
            raise CommandRejected(
                "there is no history store (VELOZ_DATABASE_URL=none)", code="not_ready"
            )
        query = AuditQuery(
            actor=actor, action=action, since_ns=since, before_ns=before, limit=limit
        )
        try:
            records = await history.store.audit_log(query)
        except StoreUnavailable as exc:
            raise CommandRejected(
                f"the history store is unavailable: {exc}", code="store_unavailable"
            ) from None
        items = [msgspec.convert(r, AuditItem, from_attributes=True) for r in records]
        return AuditLog(count=len(items), items=items)
