"""The audit importer: a spool into a store that is down, then up; its place kept across
restarts; what is left imported on stop, or kept for the next start."""

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

from veloz.persistence.audit_import import AuditImporter
from veloz.persistence.audit_spool import AuditSpoolReader, AuditSpoolWriter
from veloz.persistence.store import AuditRecord, HistoryStore, StoreUnavailable


class AuditSink:
    """A store's audit table, which can be taken down."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []
        self.down = False

    async def record_audits(self, records: Sequence[AuditRecord]) -> None:
        if self.down:
            raise StoreUnavailable("store down")
        self.records.extend(records)


def importer(spool: Path, sink: AuditSink) -> AuditImporter:
    return AuditImporter(
        AuditSpoolReader(spool),
        cast(HistoryStore, sink),
        retry_initial_s=0.01,
        retry_max_s=0.05,
        poll_interval_s=0.01,
    )


def record(n: int) -> AuditRecord:
    return AuditRecord(ts_ns=n, actor="key:k1", action="POST /api/order", request_id=f"r{n}")


def ids(records: list[AuditRecord]) -> list[str]:
    return [r.request_id for r in records]


async def until(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_records_wait_in_the_spool_while_the_store_is_down_then_go_in_once(tmp_path):
    writer = AuditSpoolWriter(tmp_path)
    sink = AuditSink()
    sink.down = True
    running = importer(tmp_path, sink)
    stop = asyncio.Event()
    task = asyncio.create_task(running.run(stop))
    for n in range(5):
        writer.append(record(n))
    await until(lambda: running.failing)
    await asyncio.sleep(0.1)  # a few retries, with backoff
    assert sink.records == [] and running.imported == 0
    sink.down = False
    await until(lambda: running.imported == 5)
    writer.append(record(5))
    await until(lambda: running.imported == 6)
    stop.set()
    await task
    assert ids(sink.records) == [f"r{n}" for n in range(6)]
    assert not running.failing
    writer.close()


async def test_a_new_importer_resumes_after_what_was_imported(tmp_path):
    writer = AuditSpoolWriter(tmp_path)
    sink = AuditSink()
    for n in range(3):
        writer.append(record(n))
    assert await importer(tmp_path, sink).import_now() == 3
    writer.close()
    # A restart: a new writer (a new file) and a new importer on the same directory.
    writer = AuditSpoolWriter(tmp_path)
    writer.append(record(3))
    again = importer(tmp_path, sink)
    assert await again.import_now() == 1
    assert ids(sink.records) == ["r0", "r1", "r2", "r3"]
    assert await again.import_now() == 0
    assert again.spool.pending_bytes() == 0
    assert len(list(tmp_path.glob("audit_*.spool"))) == 1  # the imported file deleted
    writer.close()


async def test_stopping_drains_the_spool_or_keeps_it_for_the_next_start(tmp_path):
    writer = AuditSpoolWriter(tmp_path)
    sink = AuditSink()
    running = importer(tmp_path, sink)
    stop = asyncio.Event()
    stop.set()
    await running.run(stop)  # stopped before it read anything
    writer.append(record(0))
    writer.append(record(1))
    writer.close()
    sink.down = True
    await running.drain()  # the store down: nothing lost, the place not moved
    assert sink.records == [] and running.spool.pending_bytes() > 0
    sink.down = False
    await running.drain()
    assert ids(sink.records) == ["r0", "r1"]
    assert running.spool.pending_bytes() == 0
    assert await importer(tmp_path, sink).import_now() == 0  # its place was saved
