"""The job records on disk, what a job may read, recovery after a restart, and the
research directory beside the data store."""

import os
from pathlib import Path

import msgspec
import pytest

from veloz.backtest.run import DataRef
from veloz.config import Settings
from veloz.data.store import ParquetStore
from veloz.model.errors import CommandRejected, ErrorCode
from veloz.research.jobs import (
    DataSources,
    JobKind,
    JobProgress,
    JobRecord,
    JobsConfig,
    JobService,
    JobState,
)
from veloz.research.jobs.records import is_job_id, new_job_id
from veloz.research.jobs.service import INTERRUPTED_BY_RESTART, _why
from veloz.research.jobs.store import JobStore


def record(state: JobState = JobState.DONE, created_ns: int = 1, **changes) -> JobRecord:
    return JobRecord(
        id=new_job_id(),
        kind=JobKind.BACKTEST,
        state=state,
        actor="user:alice",
        created_ns=created_ns,
        request={"strategy": "ema_cross"},
        **changes,
    )


def ref(source: str) -> DataRef:
    return DataRef(symbol="BTCUSDT", source=source)


# -- what a job may read ------------------------------------------------------------------


def test_store_references_and_files_inside_the_data_directory_are_allowed(tmp_path: Path):
    (tmp_path / "btc.csv").write_text("x")
    (tmp_path / "sub").mkdir()
    sources = DataSources(tmp_path)
    assert sources.check(ref("store:binance/BTCUSDT/1m")).source == "store:binance/BTCUSDT/1m"
    inside = str(tmp_path.resolve() / "btc.csv")
    assert sources.check(ref("btc.csv")).source == inside
    assert sources.check(ref(inside)).source == inside
    assert sources.check(ref("sub/../btc.csv")).source == inside


@pytest.mark.parametrize("source", ["/etc/passwd", "../outside.csv", "sub/../../outside.csv"])
def test_paths_out_of_the_data_directory_are_refused(tmp_path: Path, source: str):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (tmp_path / "outside.csv").write_text("x")
    with pytest.raises(CommandRejected, match="VELOZ_DATA_DIR") as refused:
        DataSources(data)(ref(source))
    assert refused.value.code is ErrorCode.BAD_PARAMS


def test_a_link_inside_pointing_outside_is_refused(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "secret.csv").write_text("x")
    (data / "link.csv").symlink_to(tmp_path / "secret.csv")
    with pytest.raises(CommandRejected, match=r"'link\.csv'"):
        DataSources(data).check(ref("link.csv"))


# -- records on disk ------------------------------------------------------------------------


def test_records_round_trip_and_damaged_ones_are_left_out(tmp_path: Path):
    store = JobStore(tmp_path)
    saved = record(progress=JobProgress(done=3, total=9), error=None)
    store.save(saved)
    damaged = store.directory(JobKind.BACKTEST, new_job_id())
    damaged.mkdir()
    (damaged / "job.json").write_text("{not json")
    (tmp_path / "backtests" / "not-an-id").mkdir()
    assert list(store.records(JobKind.BACKTEST)) == [saved]
    assert list(store.records(JobKind.OPTIMIZATION)) == []
    assert not list((tmp_path / "backtests" / saved.id).glob(".*partial"))


def test_ids_never_name_a_path(tmp_path: Path):
    assert (
        is_job_id(new_job_id()) and not is_job_id("../../etc") and not is_job_id("ABCDEF0123456789")
    )
    with pytest.raises(ValueError, match="not a job id"):
        JobStore(tmp_path).directory(JobKind.BACKTEST, "../x")


def test_jobs_a_previous_run_left_queued_or_running_are_failed_on_restart(tmp_path: Path):
    store = JobStore(tmp_path / "research")
    running = record(JobState.RUNNING, created_ns=2, started_ns=3, pid=999_999)
    queued = record(JobState.QUEUED, created_ns=3)
    done = record(JobState.DONE, created_ns=1, finished_ns=5)
    for saved in (running, queued, done):
        store.save(saved)
    service = JobService(JobsConfig(directory=tmp_path / "research", data_dir=tmp_path))
    listed = service.list(JobKind.BACKTEST)
    assert [r.id for r in listed] == [queued.id, running.id, done.id]  # newest first
    for job in listed[:2]:
        assert job.state is JobState.FAILED and job.error == INTERRUPTED_BY_RESTART
        assert job.pid is None and job.finished_ns is not None
    assert listed[2] == done
    on_disk = {r.id: r for r in store.records(JobKind.BACKTEST)}
    assert on_disk[running.id].state is JobState.FAILED
    with pytest.raises(CommandRejected) as missing:
        service.get(JobKind.OPTIMIZATION, running.id)
    assert missing.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(CommandRejected) as final:
        service.cancel(JobKind.BACKTEST, done.id)
    assert final.value.code is ErrorCode.BAD_STATE
    service.close()


def test_a_closed_service_takes_no_jobs(tmp_path: Path):
    (tmp_path / "bars.csv").write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-01-01 00:00:00,1,2,1,2,10\n"
        "2024-01-01 00:01:00,2,3,2,3,10\n"
    )
    service = JobService(JobsConfig(directory=tmp_path / "research", data_dir=tmp_path))
    service.close()
    body = b'{"strategy": "ema_cross", "data": [{"symbol": "BTCUSDT", "source": "bars.csv"}]}'
    with pytest.raises(CommandRejected) as refused:
        service.submit(JobKind.BACKTEST, body, "user:alice")
    assert refused.value.code is ErrorCode.SHUTTING_DOWN
    assert not (tmp_path / "research").exists()


def test_ray_optimisations_run_on_the_servers_cluster(tmp_path: Path):
    (tmp_path / "bars.csv").write_text(
        "timestamp,open,high,low,close,volume\n"
        + "".join(f"2024-01-01 00:{m:02d}:00,1,4,1,{1 + m % 3},10\n" for m in range(30))
    )
    config = JobsConfig(
        directory=tmp_path / "research", data_dir=tmp_path, ray_address="ray://head:10001"
    )
    service = JobService(config)
    body = {
        "backtest": {
            "strategy": "ema_cross",
            "data": [{"symbol": "BTCUSDT", "source": "bars.csv"}],
            "account": "margin",
        },
        "space": {"fast": {"values": [2, 3]}},
    }
    try:
        checked = service.check(
            JobKind.OPTIMIZATION, msgspec.json.encode(body | {"executor": "ray"})
        )
        assert msgspec.to_builtins(checked)["address"] == "ray://head:10001"
        local = service.check(JobKind.OPTIMIZATION, msgspec.json.encode(body))
        assert msgspec.to_builtins(local)["address"] is None
        with pytest.raises(CommandRejected, match="the server's to choose"):
            service.check(
                JobKind.OPTIMIZATION,
                msgspec.json.encode(body | {"executor": "ray", "address": "ray://elsewhere:1"}),
            )
    finally:
        service.close()


@pytest.mark.parametrize(
    ("outcome", "exitcode", "reason"),
    [
        (("failed", "BarDataError: x.csv: no such file"), 1, "BarDataError: x.csv: no such file"),
        (None, -9, "the worker was killed by SIGKILL"),
        (None, -15, "the worker was killed by SIGTERM"),
        (None, 0, "the worker exited with code 0 before finishing"),
        (None, 3, "the worker exited with code 3 before finishing"),
    ],
)
def test_why_a_worker_ended_without_results(outcome, exitcode, reason):
    assert _why(outcome, exitcode) == reason


# -- the research directory --------------------------------------------------------------


def test_the_research_directory_defaults_under_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("VELOZ_DATA_DIR", str(tmp_path / "market"))
    settings = Settings()
    assert settings.research_directory == tmp_path / "market" / "research"
    assert settings.research_max_jobs == 2 and settings.research_max_evaluations == 100_000
    assert settings.public_view()["research_dir"] == str(tmp_path / "market" / "research")
    assert Settings(research_dir=tmp_path / "r").research_directory == tmp_path / "r"
    config = JobsConfig.of(Settings(research_max_jobs=3, strategy_path=f"{tmp_path}:"))
    assert config.max_jobs == 3 and config.search_path == (str(tmp_path),)
    assert config.data_dir == (tmp_path / "market").resolve()
    with pytest.raises(ValueError, match="research_max_jobs"):
        Settings(research_max_jobs=0)


def test_the_data_store_does_not_list_the_research_directory(tmp_path: Path):
    store = JobStore(tmp_path / "research")
    store.save(record())
    results = store.directory(JobKind.BACKTEST, new_job_id())
    results.mkdir(parents=True)
    (results / "results.parquet").write_bytes(b"")
    assert list(ParquetStore(tmp_path).series()) == []
    assert os.listdir(tmp_path) == ["research"]
