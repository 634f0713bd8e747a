"""`GET /api/audit/logs`: the audit trail from the history store, newest first (admin)."""

from typing import Annotated

from litestar import Controller, get
from litestar.params import QueryParameter

from veloz.api.deps import Client
from veloz.api.errors import MAX_TS_NS, error_responses
from veloz.engine.views.audit import AuditLog
from veloz.model.queries import AuditQuery


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
        query = AuditQuery(
            actor=actor, action=action, since_ts_ns=since, before_ts_ns=before, limit=limit
        )
        return await engine_client.audit_log(query)
