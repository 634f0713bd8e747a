"""Parameter optimisation over backtests: grid, random and Optuna searches, objectives with a
minimum trade count, walk-forward splits, and executors that run the evaluations in a
local process pool or on Ray (docs/optimization.md).

Public API (stable; `veloz optimize run` and the API's optimisation jobs use it):

    request = msgspec.json.decode(body, type=OptimizationRequest)    # or build it
    prepared = prepare_optimization(request, max_evaluations=N,
                                    search_path=(), read_source=None)
        # raises CommandRejected / BarDataError naming the problem; nothing has run
    outcome = prepared.run(progress=lambda done, total: ..., stop=lambda: False)
        # raises OptimizationCancelled once stop() returns True (asked every < 1 s)
    write(outcome, directory)   # results.parquet, results.csv, summary.json, report.html
    outcome.summary             # JSON-ready: best params/score/metrics, folds, timing

`prepared.planned` is the number of evaluations `progress` counts to. The local executor
starts a process pool (forkserver): a caller that is itself a daemonic multiprocessing
worker must use workers=1 (evaluations in-process) or a non-daemonic process.
"""

from veloz.research.optimize.evaluate import Engine
from veloz.research.optimize.executor import ExecutorKind, SweepExecutor, open_executor
from veloz.research.optimize.objectives import Objective
from veloz.research.optimize.results import FILES, write
from veloz.research.optimize.run import (
    FoldResult,
    OptimizationCancelled,
    OptimizationOutcome,
    OptimizationRequest,
    PreparedOptimization,
    Trial,
    prepare_optimization,
)
from veloz.research.optimize.search import Method
from veloz.research.optimize.space import ParamRange
from veloz.research.optimize.walk_forward import WalkForward

__all__ = [
    "FILES",
    "Engine",
    "ExecutorKind",
    "FoldResult",
    "Method",
    "Objective",
    "OptimizationCancelled",
    "OptimizationOutcome",
    "OptimizationRequest",
    "ParamRange",
    "PreparedOptimization",
    "SweepExecutor",
    "Trial",
    "WalkForward",
    "open_executor",
    "prepare_optimization",
    "write",
]
