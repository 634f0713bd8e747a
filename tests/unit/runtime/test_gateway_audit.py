"""A gateway's audit spool: one gateway per directory; what it recorded reaches the store
when it closes, or at its next start if the store did not answer."""

from typing import cast

import pytest

from tests.unit.persistence.test_audit_import import AuditSink, ids, record
from veloz.config import SettingsError
from veloz.persistence.store import HistoryStore
from veloz.runtime.gateway.audit import GatewayAudit


async def test_a_second_gateway_on_the_same_directory_is_refused(tmp_path):
    sink = cast(HistoryStore, AuditSink())
    first = GatewayAudit(tmp_path / "audit", sink, 1.0)
    with pytest.raises(SettingsError, match=r"VELOZ_GATEWAY_AUDIT_DIR: .* in use by another"):
        GatewayAudit(tmp_path / "audit", sink, 1.0)
    await first.close()
    await GatewayAudit(tmp_path / "audit", sink, 1.0).close()  # free again


async def test_records_reach_the_store_on_close_or_at_the_next_start(tmp_path):
    sink = AuditSink()
    audit = GatewayAudit(tmp_path, cast(HistoryStore, sink), 1.0)
    audit.record(record(0))
    sink.down = True
    await audit.close()
    assert sink.records == []
    sink.down = False
    audit = GatewayAudit(tmp_path, cast(HistoryStore, sink), 1.0)
    audit.record(record(1))
    await audit.close()
    assert ids(sink.records) == ["r0", "r1"]
