"""Shared plumbing for the benchmarks: the machine description, one JSON line per figure,
the recorded result file with targets and pass/fail, the event loop choice and the small
statistics every bench needs (medians, percentiles).

A bench never asserts on time. It prints its figures, compares them with references it
measured in the same run, and records the outcome in `bench/results/<name>.json`.
"""

import argparse
import asyncio
import datetime
import importlib.metadata
import json
import logging
import math
import os
import platform
import statistics
import sys
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import uvloop

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LoopName = Literal["uvloop", "asyncio"]
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Target:
    """A target from the performance spec: `figure` must be `op` `threshold`."""

    figure: str
    op: Literal[">=", "<="]
    threshold: float

    def met_by(self, value: float) -> bool:
        return value >= self.threshold if self.op == ">=" else value <= self.threshold

    def describe(self) -> str:
        return f"{self.figure} {self.op} {self.threshold:g}"


# -- the machine -----------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo ("unknown" where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def uvloop_version() -> str | None:
    try:
        return importlib.metadata.version("uvloop")
    except importlib.metadata.PackageNotFoundError:
        return None


def machine(loop: LoopName = "uvloop") -> dict[str, Any]:
    """Where and when a figure was measured: it only means something next to this."""
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "loop": loop,
        "uvloop": uvloop_version() if loop == "uvloop" else None,
        "platform": platform.platform(),
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def filesystem_of(path: str | Path) -> dict[str, Any]:
    """The mount holding `path` (device, type) from /proc/self/mounts, to show that a
    journal and its fsync reference really sat on the same disk and not on a tmpfs."""
    resolved = str(Path(path).resolve())
    best: tuple[str, str, str] = ("?", "?", "?")
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        mounts = []
    for line in mounts:
        device, mount_point, fs_type, *_ = line.split()
        inside = resolved == mount_point or resolved.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best[1]):
            best = (device, mount_point, fs_type)
    return {
        "path": resolved,
        "device": best[0],
        "mount": best[1],
        "fs_type": best[2],
        "st_dev": os.stat(path).st_dev,
    }


# -- output ------------------------------------------------------------------------------


def emit(name: str, figure: str, value: float, unit: str, **extra: Any) -> None:
    """Print one figure as one JSON line on stdout."""
    line = {"bench": name, "figure": figure, "value": _rounded(value), "unit": unit, **extra}
    print(json.dumps(line, default=str), flush=True)


def record(
    name: str,
    figures: dict[str, Any],
    notes: str,
    *,
    targets: Sequence[Target] = (),
    loop: LoopName = "uvloop",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write `bench/results/<name>.json`: machine, figures, each target with pass/fail."""
    checked = []
    for target in targets:
        value = _figure_value(figures.get(target.figure))
        checked.append(
            {
                "target": target.describe(),
                "figure": target.figure,
                "value": _rounded(value) if value is not None else None,
                "met": None if value is None else target.met_by(value),
            }
        )
    document = {
        "bench": name,
        "machine": machine(loop),
        "figures": figures,
        "targets": checked,
        "notes": notes,
        **(extra or {}),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path


def result_name(name: str, loop: LoopName) -> str:
    """`name` on uvloop (what the service runs); `name_asyncio` for the comparison runs,
    so they do not overwrite the main result."""
    return name if loop == "uvloop" else f"{name}_{loop}"


def _figure_value(figure: Any) -> float | None:
    if isinstance(figure, dict):
        figure = figure.get("value")
    return float(figure) if isinstance(figure, int | float) else None


def _rounded(value: float) -> float:
    if isinstance(value, int) or not math.isfinite(value):
        return value
    return float(f"{value:.6g}")


def figure(value: float, unit: str, runs: Iterable[float] = (), **extra: Any) -> dict[str, Any]:
    """A recorded figure: its value (the median of `runs`), unit and the runs themselves."""
    return {"value": _rounded(value), "unit": unit, "runs": [_rounded(r) for r in runs], **extra}


# -- statistics --------------------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0 < fraction <= 1)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return float(sorted_values[rank - 1])


# -- the event loop ------------------------------------------------------------------------


def add_loop_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop to run on (default uvloop, as the service runs)",
    )


def run(main: Callable[[], Coroutine[Any, Any, _T]], loop: LoopName = "uvloop") -> _T:
    """Run `main()` to completion on a fresh uvloop (or the stock asyncio) event loop."""
    if loop == "uvloop":
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main())
    with asyncio.Runner() as runner:
        return runner.run(main())


def quiet_logging() -> None:
    """Engine info logs are not part of what is measured; keep warnings and errors."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
