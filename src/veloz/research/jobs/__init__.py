"""Backtest and optimisation jobs for the API: each runs in a worker process of its own,
never on the engine's event loop, at most `max_jobs` at once (the rest wait in a queue),
with its record and results kept on disk so that the list survives a restart.

    JobService.submit(kind, body, actor)   checks the request (400 and nothing queued
                                           when it is wrong), then queues it
    the supervisor thread                  starts queued jobs, collects progress, marks
                                           each job done / failed (with the worker's
                                           error, exit code or signal) / cancelled
    <research dir>/<backtests|optimizations>/<id>/
        job.json       the record (state, progress, times, error, the request)
        summary.json   the run's summary (when done)
        report.html    the HTML report (when done)
        results.csv, results.parquet   an optimisation's table

See docs/research-api.md.
"""

from veloz.research.jobs.records import JobKind, JobProgress, JobRecord, JobState
from veloz.research.jobs.service import JobsConfig, JobService
from veloz.research.jobs.sources import DataSources

__all__ = [
    "DataSources",
    "JobKind",
    "JobProgress",
    "JobRecord",
    "JobService",
    "JobState",
    "JobsConfig",
]
