"""Backtest and optimisation jobs over HTTP (`veloz.research.jobs`): submit, list, follow,
cancel, delete, and fetch the results (summary, HTML report, an optimisation's table).
Submitting is answered 202 once the job is checked and queued; it runs in a worker
process. Mutations are audited by the access control like every mutating request.

The service blocks (it reads data to check a request, and files), so every call is
handed to a thread, off the event loop."""

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.openapi.spec import Operation
from litestar.params import FromPath, QueryParameter, SkipValidation

from veloz.api.admin import actor_of
from veloz.api.body import AnyRequest, body_operation
from veloz.api.errors import error_responses
from veloz.backtest.run import BacktestRequest
from veloz.research.jobs import JobKind, JobRecord, JobService

Jobs = NamedDependency[SkipValidation[JobService]]

# The report is self-contained (scripts and styles inline): it may load nothing, and it
# runs in an opaque origin of its own, so that it cannot read what the dashboard keeps.
REPORT_POLICY = (
    "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; img-src data: blob:; font-src data:"
)


@dataclass
class _OptimizationBody(Operation):
    """The body schema of `POST /api/optimizations`, made when the OpenAPI document is:
    the optimiser brings numba, which the engine need not import to start."""

    def __post_init__(self) -> None:
        from veloz.research.optimize import OptimizationRequest  # noqa: PLC0415

        self.request_body = body_operation(OptimizationRequest)().request_body


class JobList(msgspec.Struct, frozen=True, kw_only=True):
    count: int
    jobs: list[JobRecord]


class JobDetail(JobRecord, frozen=True, kw_only=True):
    """The record, and the run's summary once it is done (summary.json)."""

    summary: dict[str, Any] | None = None


async def _detail(jobs: JobService, kind: JobKind, job_id: str) -> JobDetail:
    record = await asyncio.to_thread(jobs.get, kind, job_id)
    summary = await asyncio.to_thread(jobs.summary, kind, job_id)
    return JobDetail(**msgspec.structs.asdict(record), summary=summary)


async def _file(
    jobs: JobService, kind: JobKind, job_id: str, name: str, media_type: str
) -> Response[bytes]:
    path = await asyncio.to_thread(jobs.result_file, kind, job_id, name)
    content = await asyncio.to_thread(path.read_bytes)
    headers = {"content-security-policy": REPORT_POLICY} if name.endswith(".html") else {}
    if name.endswith(".csv"):
        headers["content-disposition"] = f'attachment; filename="{kind.value}-{job_id}.csv"'
    return Response(content, media_type=media_type, headers=headers)


_JOB_ERRORS = error_responses(404)
_SUBMIT_ERRORS = error_responses(413, 503)
_STOP_ERRORS = error_responses(404, 409)


class BacktestsController(Controller):
    path = "/api/backtests"
    tags = ["research"]

    @post(
        "/",
        status_code=202,
        summary="Check a backtest and queue it; it runs in a worker process",
        operation_class=body_operation(BacktestRequest),
        responses=_SUBMIT_ERRORS,
    )
    async def submit(self, request: AnyRequest, research_jobs: Jobs) -> JobRecord:
        body = await request.body()
        actor = actor_of(request)
        return await asyncio.to_thread(research_jobs.submit, JobKind.BACKTEST, body, actor)

    @get("/", summary="Backtest jobs, newest first", responses=error_responses())
    async def list_jobs(
        self, research_jobs: Jobs, limit: Annotated[int, QueryParameter(ge=1, le=10_000)] = 100
    ) -> JobList:
        found = await asyncio.to_thread(research_jobs.list, JobKind.BACKTEST, limit)
        return JobList(count=len(found), jobs=found)

    @get("/{job_id:str}", summary="One backtest job; its summary once done", responses=_JOB_ERRORS)
    async def one(self, job_id: FromPath[str], research_jobs: Jobs) -> JobDetail:
        return await _detail(research_jobs, JobKind.BACKTEST, job_id)

    @post(
        "/{job_id:str}/cancel",
        status_code=200,
        summary="Cancel a queued or running backtest (its worker is stopped)",
        responses=_STOP_ERRORS,
    )
    async def cancel(self, job_id: FromPath[str], research_jobs: Jobs) -> JobRecord:
        return await asyncio.to_thread(research_jobs.cancel, JobKind.BACKTEST, job_id)

    @delete(
        "/{job_id:str}",
        status_code=200,
        summary="Delete a backtest and its files (cancelled first if it runs)",
        responses=_JOB_ERRORS,
    )
    async def remove(self, job_id: FromPath[str], research_jobs: Jobs) -> JobRecord:
        return await asyncio.to_thread(research_jobs.delete, JobKind.BACKTEST, job_id)

    @get(
        "/{job_id:str}/report",
        summary="The backtest's HTML report",
        media_type="text/html",
        responses=_JOB_ERRORS,
    )
    async def report(self, job_id: FromPath[str], research_jobs: Jobs) -> Response[bytes]:
        return await _file(research_jobs, JobKind.BACKTEST, job_id, "report.html", "text/html")


class OptimizationsController(Controller):
    path = "/api/optimizations"
    tags = ["research"]

    @post(
        "/",
        status_code=202,
        summary="Check an optimisation and queue it; it runs in a worker process",
        operation_class=_OptimizationBody,
        responses=_SUBMIT_ERRORS,
    )
    async def submit(self, request: AnyRequest, research_jobs: Jobs) -> JobRecord:
        body = await request.body()
        actor = actor_of(request)
        return await asyncio.to_thread(research_jobs.submit, JobKind.OPTIMIZATION, body, actor)

    @get("/", summary="Optimisation jobs, newest first", responses=error_responses())
    async def list_jobs(
        self, research_jobs: Jobs, limit: Annotated[int, QueryParameter(ge=1, le=10_000)] = 100
    ) -> JobList:
        found = await asyncio.to_thread(research_jobs.list, JobKind.OPTIMIZATION, limit)
        return JobList(count=len(found), jobs=found)

    @get(
        "/{job_id:str}",
        summary="One optimisation job; its summary once done",
        responses=_JOB_ERRORS,
    )
    async def one(self, job_id: FromPath[str], research_jobs: Jobs) -> JobDetail:
        return await _detail(research_jobs, JobKind.OPTIMIZATION, job_id)

    @post(
        "/{job_id:str}/cancel",
        status_code=200,
        summary="Cancel a queued or running optimisation (its workers are stopped)",
        responses=_STOP_ERRORS,
    )
    async def cancel(self, job_id: FromPath[str], research_jobs: Jobs) -> JobRecord:
        return await asyncio.to_thread(research_jobs.cancel, JobKind.OPTIMIZATION, job_id)

    @delete(
        "/{job_id:str}",
        status_code=200,
        summary="Delete an optimisation and its files (cancelled first if it runs)",
        responses=_JOB_ERRORS,
    )
    async def remove(self, job_id: FromPath[str], research_jobs: Jobs) -> JobRecord:
        return await asyncio.to_thread(research_jobs.delete, JobKind.OPTIMIZATION, job_id)

    @get(
        "/{job_id:str}/report",
        summary="The optimisation's HTML report",
        media_type="text/html",
        responses=_JOB_ERRORS,
    )
    async def report(self, job_id: FromPath[str], research_jobs: Jobs) -> Response[bytes]:
        return await _file(research_jobs, JobKind.OPTIMIZATION, job_id, "report.html", "text/html")

    @get(
        "/{job_id:str}/results",
        summary="The results table as CSV (one row per evaluation)",
        media_type="text/csv",
        responses=_JOB_ERRORS,
    )
    async def results(self, job_id: FromPath[str], research_jobs: Jobs) -> Response[bytes]:
        return await _file(research_jobs, JobKind.OPTIMIZATION, job_id, "results.csv", "text/csv")
