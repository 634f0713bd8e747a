"""Backtest and optimisation jobs over HTTP, end to end: the API on a live engine, the jobs
in real worker processes, their files on disk. A backtest to done with its summary and
report, the list after a restart, cancel, a worker killed with SIGKILL, bad input (400 and
no job), an optimisation with its results table, and who may do what."""

import asyncio
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.sample_bars import sample_path
from veloz.auth.roles import Role
from veloz.auth.service import AuthConfig, AuthService
from veloz.config import Settings
from veloz.model.market import PriceBar
from veloz.persistence.service import HistoryConfig
from veloz.research.jobs import JobsConfig, JobService
from veloz.runtime.history import attach_history
from veloz.runtime.live import LiveEngine
from veloz.runtime.service import service_app
from veloz.strategy.base import Strategy

SLOW = f"{__name__}:SlowBars"


class SlowBars(Strategy):
    """Takes half a millisecond a bar: a backtest long enough to cancel or kill."""

    name = "slow_bars"

    def on_bar(self, bar: PriceBar) -> None:
        time.sleep(0.0005)


@dataclass
class Research:
    http: httpx.AsyncClient
    jobs: JobService
    config: JobsConfig


@pytest.fixture
def research_config(tmp_path: Path) -> JobsConfig:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(sample_path(), data / "btc.csv")
    return JobsConfig(directory=data / "research", data_dir=data, max_jobs=2, max_evaluations=50)


async def open_research(engine: LiveEngine, config: JobsConfig) -> AsyncIterator[Research]:
    jobs = JobService(config)
    app = service_app(engine, Settings(), jobs=jobs)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://veloz.test") as http:
            yield Research(http, jobs, config)
    finally:
        await asyncio.to_thread(jobs.close)


@pytest.fixture
async def research(engine: LiveEngine, research_config: JobsConfig) -> AsyncIterator[Research]:
    async for opened in open_research(engine, research_config):
        yield opened


async def group_ended(pgid: int) -> None:
    """Wait until no process of the group is left (the test's timeout ends the wait)."""
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        await asyncio.sleep(0.05)


def backtest(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "strategy": "ema_cross",
        "data": [{"symbol": "BTCUSDT", "source": "btc.csv"}],
        "params": {"fast": 10, "slow": 30, "qty": 0.01},
    }
    return body | changes


async def wait_for(
    http: httpx.AsyncClient,
    url: str,
    *states: str,
    check: Callable[[dict[str, Any]], bool] = lambda job: True,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Poll until the job is in one of `states` (and `check` holds); the test's own
    timeout ends a job that never gets there."""
    while True:
        job: dict[str, Any] = (await http.get(url, headers=headers)).json()
        if job["state"] in states and check(job):
            return job
        assert job["state"] in ("queued", "running", *states), job
        await asyncio.sleep(0.05)


async def test_a_backtest_runs_to_done_with_its_summary_and_report(research: Research):
    answer = await research.http.post("/api/backtests", json=backtest())
    assert answer.status_code == 202, answer.text
    queued = answer.json()
    assert queued["state"] == "queued" and queued["kind"] == "backtest"
    assert queued["request"]["params"] == {"fast": 10, "slow": 30, "qty": 0.01}
    url = f"/api/backtests/{queued['id']}"

    done = await wait_for(research.http, url, "done")
    assert done["error"] is None and done["pid"] is None
    assert done["started_ns"] >= done["created_ns"] and done["finished_ns"] >= done["started_ns"]
    assert done["progress"] == {"done": 45_031, "total": 45_031}
    summary = done["summary"]
    assert summary["bars"] == 45_031 and summary["strategy"] == "ema_cross"
    assert summary["params"] == {"fast": 10, "slow": 30, "qty": "0.01"}
    assert summary["fills"] >= 1 and summary["statistics"]["trades"]["fees"] == summary["fees"]

    directory = research.config.directory / "backtests" / queued["id"]
    assert sorted(p.name for p in directory.iterdir()) == [
        "job.json",
        "report.html",
        "summary.json",
    ]
    report = await research.http.get(f"{url}/report")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "sandbox" in report.headers["content-security-policy"]
    assert report.content == (directory / "report.html").read_bytes()

    listed = (await research.http.get("/api/backtests")).json()
    assert listed["count"] == 1 and listed["jobs"][0]["id"] == queued["id"]


async def test_the_list_survives_a_restart_newest_first(
    engine: LiveEngine, research_config: JobsConfig
):
    ids = []
    async for research in open_research(engine, research_config):
        for fast in (5, 8):
            answer = await research.http.post(
                "/api/backtests", json=backtest(params={"fast": fast})
            )
            ids.append(answer.json()["id"])
        for job_id in ids:
            await wait_for(research.http, f"/api/backtests/{job_id}", "done")
    async for research in open_research(engine, research_config):
        listed = (await research.http.get("/api/backtests")).json()
        assert [job["id"] for job in listed["jobs"]] == ids[::-1]
        assert {job["state"] for job in listed["jobs"]} == {"done"}
        again = (await research.http.get(f"/api/backtests/{ids[0]}")).json()
        assert again["summary"]["params"]["fast"] == 5
        assert (await research.http.get(f"/api/backtests/{ids[0]}/report")).status_code == 200


async def test_a_job_left_running_by_a_stop_is_failed_after_it(
    engine: LiveEngine, research_config: JobsConfig
):
    async for research in open_research(engine, research_config):
        answer = await research.http.post("/api/backtests", json=backtest(strategy=SLOW, params={}))
        job_id = answer.json()["id"]
        running = await wait_for(research.http, f"/api/backtests/{job_id}", "running")
    with pytest.raises(ProcessLookupError):  # the stop killed the worker
        os.kill(running["pid"], 0)
    async for research in open_research(engine, research_config):
        job = (await research.http.get(f"/api/backtests/{job_id}")).json()
        assert job["state"] == "failed" and job["error"] == "interrupted: the engine stopped"


async def test_cancel_stops_the_worker_within_a_second(research: Research):
    answer = await research.http.post("/api/backtests", json=backtest(strategy=SLOW, params={}))
    url = f"/api/backtests/{answer.json()['id']}"
    running = await wait_for(
        research.http, url, "running", check=lambda job: job["progress"]["total"] > 0
    )
    asked_ns = time.time_ns()
    cancelled = await research.http.post(f"{url}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    job = cancelled.json()
    assert job["state"] == "cancelled" and job["error"] is None
    assert job["finished_ns"] - asked_ns < 1_000_000_000
    with pytest.raises(ProcessLookupError):
        os.kill(running["pid"], 0)
    assert (await research.http.post(f"{url}/cancel")).status_code == 409
    report = await research.http.get(f"{url}/report")
    assert report.status_code == 404 and report.json()["error"] == "not_found"


async def test_a_worker_killed_with_sigkill_fails_its_job_with_the_reason(
    research: Research, engine: LiveEngine
):
    answer = await research.http.post("/api/backtests", json=backtest(strategy=SLOW, params={}))
    url = f"/api/backtests/{answer.json()['id']}"
    running = await wait_for(
        research.http, url, "running", check=lambda job: job["progress"]["total"] > 0
    )
    os.kill(running["pid"], signal.SIGKILL)
    failed = await wait_for(research.http, url, "failed")
    assert failed["error"] == "the worker was killed by SIGKILL"
    assert failed["summary"] is None
    # The engine did not notice: it still answers and another job still runs.
    assert (await research.http.get("/api/account")).status_code == 200
    again = await research.http.post("/api/backtests", json=backtest())
    await wait_for(research.http, f"/api/backtests/{again.json()['id']}", "done")


async def test_deleting_a_running_job_cancels_it_and_removes_its_files(research: Research):
    answer = await research.http.post("/api/backtests", json=backtest(strategy=SLOW, params={}))
    job_id = answer.json()["id"]
    await wait_for(research.http, f"/api/backtests/{job_id}", "running")
    deleted = await research.http.delete(f"/api/backtests/{job_id}")
    assert deleted.status_code == 200 and deleted.json()["state"] == "cancelled"
    assert not (research.config.directory / "backtests" / job_id).exists()
    assert (await research.http.get(f"/api/backtests/{job_id}")).status_code == 404
    assert (await research.http.delete(f"/api/backtests/{job_id}")).status_code == 404


async def test_jobs_beyond_the_bound_wait_and_a_failing_run_says_why(
    engine: LiveEngine, research_config: JobsConfig
):
    one_at_a_time = replace(research_config, max_jobs=1)
    async for research in open_research(engine, one_at_a_time):
        slow = await research.http.post("/api/backtests", json=backtest(strategy=SLOW, params={}))
        waiting = await research.http.post("/api/backtests", json=backtest())
        slow_url, waiting_url = (f"/api/backtests/{a.json()['id']}" for a in (slow, waiting))
        await wait_for(research.http, slow_url, "running")
        assert (await research.http.get(waiting_url)).json()["state"] == "queued"
        third = await research.http.post("/api/backtests", json=backtest())
        dropped = (await research.http.post(f"/api/backtests/{third.json()['id']}/cancel")).json()
        assert dropped["state"] == "cancelled" and dropped["started_ns"] is None
        # Checked when it was queued; gone by the time it runs: the worker's error.
        (one_at_a_time.data_dir / "btc.csv").unlink()
        await research.http.post(f"{slow_url}/cancel")
        failed = await wait_for(research.http, waiting_url, "failed")
        assert failed["error"].startswith("BarDataError: ") and "no such file" in failed["error"]
        assert failed["started_ns"] is not None


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"strategy": "no_such_strategy"}, "unknown strategy 'no_such_strategy'"),
        ({"params": {"fast": 0}}, "parameter fast of ema_cross"),
        ({"params": {"speed": 3}}, "unknown parameter speed"),
        ({"params": {"fast": 10_001}}, "parameter fast of ema_cross"),
        ({"data": [{"symbol": "BTCUSDT", "source": "/etc/passwd"}]}, "'/etc/passwd'"),
        ({"data": [{"symbol": "BTCUSDT", "source": "../../etc/hosts"}]}, "'../../etc/hosts'"),
        ({"start": "2030-01-01"}, "no bars between 2030-01-01"),
        ({"fee_bps": -1}, "fee_bps must be"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_bad_input_is_400_naming_it_and_starts_nothing(
    research: Research, changes: dict[str, Any], named: str
):
    answer = await research.http.post("/api/backtests", json=backtest(**changes))
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "bad_params" and named in answer.json()["message"]
    assert (await research.http.get("/api/backtests")).json()["count"] == 0
    assert not (research.config.directory / "backtests").exists()


async def test_a_link_out_of_the_data_directory_is_refused(research: Research):
    (research.config.data_dir / "escape.csv").symlink_to(sample_path())
    answer = await research.http.post(
        "/api/backtests", json=backtest(data=[{"symbol": "BTCUSDT", "source": "escape.csv"}])
    )
    assert answer.status_code == 400 and "VELOZ_DATA_DIR" in answer.json()["message"]


async def test_not_json_and_unknown_ids(research: Research):
    answer = await research.http.post(
        "/api/backtests", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400 and answer.json()["error"] == "bad_json"
    for url in ("/api/backtests/0123456789abcdef", "/api/backtests/..%2F..%2Fetc"):
        assert (await research.http.get(url)).status_code == 404
    assert (
        await research.http.post("/api/optimizations/0123456789abcdef/cancel")
    ).status_code == 404


async def test_an_optimisation_runs_to_done_with_its_results_table(research: Research):
    body = {
        "backtest": backtest(params={"qty": 0.01}),
        "space": {"fast": {"values": [5, 10, 20]}, "slow": {"values": [30, 60]}},
        "objective": "total_return",
        "workers": 1,
    }
    answer = await research.http.post("/api/optimizations", json=body)
    assert answer.status_code == 202, answer.text
    url = f"/api/optimizations/{answer.json()['id']}"
    done = await wait_for(research.http, url, "done")
    assert done["progress"] == {"done": 6, "total": 6}
    assert done["summary"]["evaluations"] == 6 and done["summary"]["objective"] == "total_return"
    best = done["summary"]["best"]["params"]
    results = await research.http.get(f"{url}/results")
    assert results.status_code == 200 and results.headers["content-type"].startswith("text/csv")
    header, *rows = results.text.strip().splitlines()
    assert header.split(",")[:4] == ["trial", "fast", "slow", "score"] and len(rows) == 6
    top = max(rows, key=lambda row: float(row.split(",")[3]))
    assert top.split(",")[1:3] == [str(best["fast"]), str(best["slow"])]
    assert (await research.http.get(f"{url}/report")).status_code == 200
    listed = (await research.http.get("/api/optimizations")).json()
    assert listed["count"] == 1
    assert (await research.http.get("/api/backtests")).json()["count"] == 0


async def test_cancelling_an_optimisation_ends_its_process_pool(
    engine: LiveEngine, research_config: JobsConfig
):
    body = {
        "backtest": backtest(params={"qty": 0.01}),
        "space": {"fast": {"low": 2, "high": 200}, "slow": {"values": [300, 400]}},
        "engine": "event",
        "workers": 2,
    }
    async for research in open_research(engine, replace(research_config, max_evaluations=1000)):
        answer = await research.http.post("/api/optimizations", json=body)
        assert answer.status_code == 202, answer.text
        url = f"/api/optimizations/{answer.json()['id']}"
        running = await wait_for(
            research.http, url, "running", check=lambda job: job["progress"]["done"] > 0
        )
        cancelled = (await research.http.post(f"{url}/cancel")).json()
        assert cancelled["state"] == "cancelled"
        assert cancelled["progress"]["done"] < cancelled["progress"]["total"] == 398
        # The pool's processes were killed with the group; they are gone once their new
        # parent (init) has reaped them.
        await group_ended(running["pid"])
        results = await research.http.get(f"{url}/results")
        assert results.status_code == 404


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"space": {"fast": {"low": 2, "high": 100}, "slow": {"values": [30, 60]}}}, "limit of 50"),
        ({"objective": "bogus"}, "$.objective"),
        ({"space": {"fast": {"values": [0, 5]}}}, "fast"),
        ({"space": {"colour": {"values": [1]}}}, "colour"),
        ({"workers": 100_000}, "workers"),
        # The engine would connect to any cluster a trader named.
        ({"executor": "ray", "address": "ray://10.0.0.9:10001"}, "VELOZ_RESEARCH_RAY_ADDRESS"),
    ],
)
async def test_a_bad_optimisation_is_400_and_starts_nothing(
    research: Research, changes: dict[str, Any], named: str
):
    body = {
        "backtest": backtest(params={"qty": 0.01}),
        "space": {"fast": {"values": [5, 10]}},
    } | changes
    answer = await research.http.post("/api/optimizations", json=body)
    assert answer.status_code == 400, answer.text
    assert named in answer.json()["message"]
    assert (await research.http.get("/api/optimizations")).json()["count"] == 0


# -- who may do what --------------------------------------------------------------------


async def test_viewers_read_traders_run_cancel_and_delete(
    engine: LiveEngine, research_config: JobsConfig, tmp_path: Path
):
    history = attach_history(HistoryConfig(url=f"sqlite:///{tmp_path / 'h.db'}"), engine)
    await history.start()
    auth = AuthService(
        AuthConfig(enabled=True, jwt_secret="9f2c1e7a4b8d6f0e3a5c7b9d1f3e5a7c9b1d3f5e7a9c"),
        history.store,
        time.time_ns,
    )
    await auth.start()
    jobs = JobService(research_config)
    app = service_app(engine, Settings(), history, auth=auth, jobs=jobs)
    keys = {role: (await auth.create_key(f"{role} key", role)).key for role in Role}
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://veloz.test") as http:

            def as_(role: Role) -> dict[str, str]:
                return {"X-API-Key": keys[role]}

            assert (await http.get("/api/backtests")).status_code == 401
            refused = await http.post("/api/backtests", json=backtest(), headers=as_(Role.VIEWER))
            assert refused.status_code == 403
            assert (await http.get("/api/backtests", headers=as_(Role.VIEWER))).json()["count"] == 0

            answer = await http.post("/api/backtests", json=backtest(), headers=as_(Role.TRADER))
            assert answer.status_code == 202 and answer.json()["actor"].startswith("key:")
            url = f"/api/backtests/{answer.json()['id']}"
            viewer = as_(Role.VIEWER)
            await wait_for(http, url, "done", headers=viewer)
            assert (await http.get(f"{url}/report", headers=viewer)).status_code == 200
            assert (await http.delete(url, headers=viewer)).status_code == 403
            assert (await http.post(f"{url}/cancel", headers=viewer)).status_code == 403
            assert (await http.delete(url, headers=as_(Role.TRADER))).status_code == 200

            audit = (await http.get("/api/audit/logs", headers=as_(Role.ADMIN))).json()
            actions = [(item["action"], item["result"]) for item in audit["items"]]
            assert ("POST /api/backtests", "202") in actions
            assert ("POST /api/backtests", "403 forbidden") in actions
    finally:
        await asyncio.to_thread(jobs.close)
        await auth.stop()
        await history.stop()
