"""An optimisation's files: the results table (`results.parquet`, `results.csv`), the
summary (`summary.json`) and the report (`report.html`), each written to a temporary name
and renamed, so a reader sees a whole file or none."""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from veloz.backtest.report import OptimizationReport, render_optimization_report
from veloz.research.optimize.run import REPORT_ROWS, OptimizationOutcome

FILES = ("results.parquet", "results.csv", "summary.json", "report.html")


def write(outcome: OptimizationOutcome, directory: Path) -> list[Path]:
    """Write the files into `directory` (created if missing); the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = [
        _atomic(directory / "results.parquet", outcome.results.write_parquet),
        _atomic(directory / "results.csv", outcome.results.write_csv),
        _atomic(
            directory / "summary.json",
            lambda path: Path(path).write_bytes(
                msgspec.json.format(msgspec.json.encode(outcome.summary)) + b"\n"
            ),
        ),
    ]
    html = report_html(outcome)
    written.append(
        _atomic(directory / "report.html", lambda path: Path(path).write_text(html, "utf-8"))
    )
    return written


def report_html(outcome: OptimizationOutcome) -> str:
    """The HTML report: the best parameters with their metrics, the top rows, the
    walk-forward folds, and the best backtest's equity and drawdown."""
    summary = outcome.summary
    best = summary["best"]
    walk_forward = summary["walk_forward"]
    top = outcome.results.sort("score", descending=True, nulls_last=True, maintain_order=True)
    report = OptimizationReport(
        strategy=summary["strategy"],
        objective=summary["objective"],
        method=summary["method"],
        seed=summary["seed"],
        data=summary["data"],
        start=summary["start"],
        end=summary["end"],
        evaluations=summary["evaluations"],
        best_params={} if best is None else {**summary["fixed"], **best["params"]},
        best_score=None if best is None else best["score"],
        best_metrics={} if best is None else best["metrics"],
        columns=list(outcome.results.columns),
        rows=top.head(REPORT_ROWS).to_dicts(),
        walk_forward=None if walk_forward is None else walk_forward["results"],
    )
    html: str = render_optimization_report(report, outcome.best_backtest)
    return html


def _atomic(path: Path, write_to: Callable[[Any], object]) -> Path:
    partial = path.with_name(f".{path.name}.partial")
    write_to(partial)
    os.replace(partial, path)
    return path
