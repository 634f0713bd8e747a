"""The audit trail as `/api/audit/logs` shows it: who did what, with which parameters,
and what came of it, newest first."""

from typing import Any

import msgspec


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
