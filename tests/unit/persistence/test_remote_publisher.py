"""The engine's view of the Redis publisher running in the projector's process: nothing
known (so the whole journal is kept) until that process reports since the engine's start,
then its figures; a status gone stale shows the process as not running."""

import time
from pathlib import Path

import pytest

from veloz.persistence import redis_events
from veloz.persistence.projector_status import (
    STALE_AFTER_S,
    ProjectorStatus,
    PublisherStatus,
    projector_dir,
    write_status,
)
from veloz.persistence.redis_events import RedisConfig, RemotePublisher


@pytest.fixture(autouse=True)
def read_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_events, "REMOTE_READ_EVERY_S", 0.0)


def report(journal: Path, ts_ns: int, **figures: object) -> None:
    status = ProjectorStatus(pid=1, ts_ns=ts_ns, redis=PublisherStatus(**figures))  # type: ignore[arg-type]
    write_status(journal, status)


def test_the_engine_sees_the_publisher_only_through_its_status(tmp_path: Path):
    journal = tmp_path / "wal"
    projector_dir(journal).mkdir(parents=True)
    started = time.time_ns()
    remote = RemotePublisher(RedisConfig(url="redis://cache:6379/0"), journal, lambda: 120, started)
    assert remote.next_needed_seq() == 1 and not remote.stats.connected
    assert "not reported" in remote.stats.last_error

    report(journal, started - 1, connected=True, published_seq=100, next_needed_seq=90)
    assert remote.next_needed_seq() == 1  # written before this engine started: not trusted

    counts = [0] * len(remote.stats.batch_seconds.counts)
    counts[3] = 7
    report(
        journal,
        time.time_ns(),
        connected=True,
        published_seq=100,
        next_needed_seq=90,
        batch_counts=counts,
        batch_total_s=0.01,
    )
    assert remote.next_needed_seq() == 90
    assert remote.stats.connected and remote.lag() == 20
    assert remote.stats.batch_seconds.count == 7

    # A status that stopped changing: the process is not running (an engine started
    # before that status was written, so it counts).
    long_running = RemotePublisher(RedisConfig(url="redis://cache:6379/0"), journal, lambda: 120, 0)
    stale = time.time_ns() - int((STALE_AFTER_S + 1) * 1e9)
    report(journal, stale, connected=True, published_seq=110, next_needed_seq=95)
    assert not long_running.stats.connected
    assert long_running.stats.last_error == "projector process not running"
    assert long_running.next_needed_seq() == 95  # retention still trusts where it got to
