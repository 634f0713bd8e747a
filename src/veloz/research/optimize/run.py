"""An optimisation from request to outcome, the same for `veloz optimize run` and the API's
optimisation jobs:

    OptimizationRequest
      -> prepare_optimization: every check (strategy, space against the strategy's bounds,
         method, objective, size against max_evaluations, data and period), then the bars
         read: CommandRejected / BarDataError and nothing has run
      -> PreparedOptimization.run(progress, stop): the searches, over the whole period or
         fold by fold (walk-forward), on an executor -> OptimizationOutcome
      -> write(outcome, directory): results.parquet, results.csv, summary.json, report.html
"""

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any

import msgspec
import numpy as np
import polars as pl

from veloz.backtest.data import BarDataError, BarSeries
from veloz.backtest.run import (
    BacktestOutcome,
    BacktestRequest,
    DataRef,
    PreparedBacktest,
    iso,
    prepare,
)
from veloz.backtest.vectorized import SweepMetrics, supports
from veloz.model.errors import CommandRejected
from veloz.research.optimize.evaluate import (
    Chunk,
    Engine,
    Evaluation,
    evaluate_chunk,
    period,
    prepared_for,
)
from veloz.research.optimize.executor import (
    ExecutorKind,
    SweepExecutor,
    default_workers,
    open_executor,
)
from veloz.research.optimize.objectives import Objective, better, score
from veloz.research.optimize.search import Method, new_search
from veloz.research.optimize.space import ParameterSpace, ParamRange
from veloz.research.optimize.walk_forward import Fold, WalkForward, split
from veloz.strategy.registry import strategy_class

Progress = Callable[[int, int], None]
Stop = Callable[[], bool]

METRICS = [field.name for field in msgspec.structs.fields(SweepMetrics)]
# Bar-evaluations per chunk, so that a chunk takes well under a second on one core and a
# stop is seen within a second: the kernels do ~100M bar-evals/s per core, the bar loop
# 250k (a trade every few bars, with the statistics) to 1M bars/s.
_CHUNK_BAR_EVALS = {Engine.VECTORIZED: 20_000_000, Engine.EVENT: 100_000}
# Rows of the results table in the HTML report, best first.
REPORT_ROWS = 50


class OptimizationRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An optimisation to run. `backtest` gives the strategy, data, costs and period; its
    params are the fixed ones. `space` gives the searched ones."""

    backtest: BacktestRequest
    space: dict[str, ParamRange]
    method: Method = Method.GRID
    trials: Annotated[int, msgspec.Meta(ge=1)] | None = None  # random and optuna
    objective: Objective = Objective.SHARPE
    min_trades: Annotated[int, msgspec.Meta(ge=0)] = 0
    seed: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)] = 0
    walk_forward: WalkForward | None = None
    executor: ExecutorKind = ExecutorKind.LOCAL
    workers: Annotated[int, msgspec.Meta(ge=1, le=1024)] | None = None
    address: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)] | None = None
    engine: Engine = Engine.AUTO


class OptimizationCancelled(Exception):
    """`stop()` said so; what was evaluated is dropped."""


@dataclass(frozen=True)
class Trial:
    number: int  # in evaluation order, from 0 (per fold with walk-forward)
    fold: int | None
    params: dict[str, Any]  # the searched values
    score: float | None
    metrics: SweepMetrics | None  # None when pruned (stopped at the first half)
    pruned: bool = False


@dataclass(frozen=True)
class FoldResult:
    fold: Fold
    in_sample: tuple[str, str]  # ISO times of the window's first and last bar
    out_of_sample: tuple[str, str]
    best: Trial | None  # None when no in-sample trial scored
    out_of_sample_metrics: SweepMetrics | None
    out_of_sample_score: float | None


@dataclass(frozen=True)
class OptimizationOutcome:
    request: OptimizationRequest
    results: pl.DataFrame  # one row per evaluation, in order: [fold], trial, params, score, metrics
    best: Trial | None  # the whole period's best; with walk-forward, the last fold's
    folds: list[FoldResult]  # empty without walk-forward
    best_backtest: BacktestOutcome | None  # the best parameters over the bars they won on
    summary: dict[str, Any]  # JSON-ready


@dataclass(frozen=True)
class _Stage:
    fold: int | None
    start_ns: int
    end_ns: int


@dataclass(frozen=True)
class PreparedOptimization:
    """A checked request with its bars read: `run` cannot fail on input."""

    request: OptimizationRequest
    space: ParameterSpace
    evaluation: Evaluation
    grid: list[dict[str, Any]]  # the valid grid points (grid method)
    skipped: int  # grid points the strategy refuses (fast >= slow...)
    folds: list[Fold]
    planned: int  # evaluations, out-of-sample ones included

    @property
    def template(self) -> PreparedBacktest:
        return self.evaluation.template

    def run(
        self,
        progress: Progress | None = None,
        stop: Stop | None = None,
        executor: SweepExecutor | None = None,
    ) -> OptimizationOutcome:
        """Every evaluation, then the best parameters' backtest (`_best_backtest`).
        `stop` is asked between chunks (each well under a second): True raises
        OptimizationCancelled. `executor` replaces the one the request names."""
        started = time.perf_counter()
        own = executor is None
        runner = self._open_executor() if executor is None else executor
        try:
            done = _Counter(self.planned, progress, stop)
            rows: list[dict[str, Any]] = []
            best, folds, chosen_on = None, [], self._whole()
            if not self.folds:
                best = self._search(runner, chosen_on, rows, done)
            for fold in self.folds:
                chosen_on = self._stage(fold, fold.in_sample)
                best = self._search(runner, chosen_on, rows, done)
                oos = self._stage(fold, fold.out_of_sample)
                folds.append(self._out_of_sample(runner, fold, oos, best, done))
        finally:
            if own:
                runner.close()
        best_backtest = self._best_backtest(best, chosen_on)
        seconds = time.perf_counter() - started
        results = _table(
            rows,
            self.space.names,
            walk_forward=bool(self.folds),
            pruning=self.request.method is Method.OPTUNA,
        )
        summary = self._summary(
            results=results,
            best=best,
            folds=folds,
            best_backtest=best_backtest,
            workers=runner.workers,
            seconds=seconds,
        )
        return OptimizationOutcome(self.request, results, best, folds, best_backtest, summary)

    # -- the searches ---------------------------------------------------------------------

    def _search(
        self, executor: SweepExecutor, stage: _Stage, rows: list[dict[str, Any]], done: "_Counter"
    ) -> Trial | None:
        request = self.request
        search = new_search(
            request.method, self.space, grid=self.grid, trials=request.trials, seed=request.seed
        )
        best: Trial | None = None
        number = 0
        while points := search.ask():
            pruned = [False] * len(points)
            if search.prunes:
                early = self._evaluate(executor, self._first_half(stage), points, done, count=False)
                pruned = search.prune(
                    [score(m, request.objective, request.min_trades) for _, m in early]
                )
                done.add(sum(pruned))
            survivors = [point for point, cut in zip(points, pruned, strict=True) if not cut]
            evaluated = iter(self._evaluate(executor, stage, survivors, done))
            scores = []
            for point, cut in zip(points, pruned, strict=True):
                metrics = None if cut else next(evaluated)[1]
                value = score(metrics, request.objective, request.min_trades)
                trial = Trial(number, stage.fold, point, value, metrics, pruned=cut)
                rows.append(_row(trial))
                if better(value, best.score if best else None):
                    best = trial
                scores.append(value)
                number += 1
            search.tell(scores)
        return best

    def _evaluate(
        self,
        executor: SweepExecutor,
        stage: _Stage,
        points: list[dict[str, Any]],
        done: "_Counter",
        *,
        count: bool = True,
    ) -> list[tuple[dict[str, Any], SweepMetrics | None]]:
        """The metrics of each point over the stage's bars; `count`: as progress."""
        if not points:
            return []
        fixed = self.space.fixed
        bars = len(self.template.bars[self.template.spec.symbol])
        size = max(
            1,
            min(
                math.ceil(len(points) / (4 * executor.workers)),
                _CHUNK_BAR_EVALS[self.evaluation.engine] // bars,
            ),
        )
        groups = [points[i : i + size] for i in range(0, len(points), size)]
        chunks = [
            Chunk(stage.start_ns, stage.end_ns, tuple({**fixed, **p} for p in group))
            for group in groups
        ]
        found: list[tuple[dict[str, Any], SweepMetrics | None]] = []
        done.check()
        for group, metrics in zip(groups, executor.map(evaluate_chunk, chunks), strict=True):
            found.extend(zip(group, metrics, strict=True))
            done.add(len(group) if count else 0)
        return found

    def _out_of_sample(
        self,
        executor: SweepExecutor,
        fold: Fold,
        oos: _Stage,
        best: Trial | None,
        done: "_Counter",
    ) -> FoldResult:
        metrics = None
        if best is not None:
            ((_, metrics),) = self._evaluate(executor, oos, [best.params], done)
        else:
            done.add(1)
        ts = self._traded().ts_ns
        return FoldResult(
            fold=fold,
            in_sample=(iso(int(ts[fold.in_sample[0]])), iso(int(ts[fold.in_sample[1] - 1]))),
            out_of_sample=(
                iso(int(ts[fold.out_of_sample[0]])),
                iso(int(ts[fold.out_of_sample[1] - 1])),
            ),
            best=best,
            out_of_sample_metrics=metrics,
            # The minimum trade count chooses among in-sample trials; out of sample it would
            # hide exactly the folds where the chosen parameters did badly or barely traded.
            out_of_sample_score=score(metrics, self.request.objective, 0),
        )

    def _best_backtest(self, best: Trial | None, chosen_on: _Stage) -> BacktestOutcome | None:
        """The best parameters' backtest, event-driven, over the bars they were chosen on
        (with walk-forward, the last fold's in-sample window): the report's charts."""
        if best is None:
            return None
        bars = {
            symbol: period(series, chosen_on.start_ns, chosen_on.end_ns)
            for symbol, series in self.template.bars.items()
        }
        return prepared_for(self.template, {**self.space.fixed, **best.params}, bars).run()

    # -- periods and executors ------------------------------------------------------------

    def _traded(self) -> BarSeries:
        return self.template.bars[self.template.spec.symbol]

    def _first_half(self, stage: _Stage) -> _Stage:
        """The stage's first half of bars, where Optuna's pruner judges a trial."""
        ts = self._traded().ts_ns
        lo = int(np.searchsorted(ts, stage.start_ns, side="left"))
        hi = int(np.searchsorted(ts, stage.end_ns, side="left"))
        return _Stage(stage.fold, stage.start_ns, int(ts[(lo + hi) // 2]))

    def _whole(self) -> _Stage:
        ts = self._traded().ts_ns
        return _Stage(None, int(ts[0]), int(ts[-1]) + 1)

    def _stage(self, fold: Fold, window: tuple[int, int]) -> _Stage:
        ts = self._traded().ts_ns
        lo, hi = window
        end = int(ts[hi]) if hi < len(ts) else int(ts[-1]) + 1
        return _Stage(fold.number, int(ts[lo]), end)

    def _open_executor(self) -> SweepExecutor:
        request = self.request
        workers = request.workers
        if workers is None and request.executor is ExecutorKind.LOCAL:
            # The kernels already spread a chunk over every core (numba prange): a pool
            # adds only its start-up (10,000 ema_cross sets on 45,031 bars, 2 cores: 3.0 s
            # in-process, 5.1 s in a 2-process pool). The bar loop is one core per run.
            workers = 1 if self.evaluation.engine is Engine.VECTORIZED else default_workers()
        threads: int | None = None  # in-process: every core
        if request.executor is ExecutorKind.RAY:
            threads = 1  # one CPU per Ray task
        elif (count := workers or default_workers()) > 1:
            threads = max(1, default_workers() // count)
        evaluation = replace(self.evaluation, numba_threads=threads)
        return open_executor(request.executor, evaluation, workers, request.address)

    # -- the summary ----------------------------------------------------------------------

    def _summary(
        self,
        *,
        results: pl.DataFrame,
        best: Trial | None,
        folds: list[FoldResult],
        best_backtest: BacktestOutcome | None,
        workers: int,
        seconds: float,
    ) -> dict[str, Any]:
        request = self.request
        template = self.template
        evaluations = results.height + sum(1 for f in folds if f.out_of_sample_metrics)
        return {
            "strategy": request.backtest.strategy,
            "objective": request.objective.value,
            "method": request.method.value,
            "seed": request.seed,
            "min_trades": request.min_trades,
            "engine": self.evaluation.engine.value,
            "executor": request.executor.value,
            "workers": workers,
            "fixed": msgspec.to_builtins(dict(self.space.fixed)),
            "space": msgspec.to_builtins(request.space),
            "data": [
                {"symbol": symbol, "source": series.source, "bars": len(series)}
                for symbol, series in template.bars.items()
            ],
            "start": iso(self._traded().start_ns),
            "end": iso(self._traded().end_ns),
            "evaluations": evaluations,
            "skipped": self.skipped,
            "seconds": round(seconds, 6),
            "evaluations_per_s": round(evaluations / seconds, 1) if seconds > 0 else None,
            "columns": results.columns,
            "best": _trial_json(best),
            "walk_forward": _walk_forward_json(request.walk_forward, folds),
            "best_backtest": None if best_backtest is None else best_backtest.summary,
            "request": msgspec.to_builtins(request),
        }


class _Counter:
    """Evaluations done so far, reported to `progress`; `stop` asked at each step."""

    def __init__(self, total: int, progress: Progress | None, stop: Stop | None) -> None:
        self.total, self.done = total, 0
        self._progress, self._stop = progress, stop

    def check(self) -> None:
        if self._stop is not None and self._stop():
            raise OptimizationCancelled("the optimisation was cancelled")

    def add(self, count: int) -> None:
        self.done += count
        self.total = max(self.total, self.done)
        if self._progress is not None:
            self._progress(self.done, self.total)
        self.check()


# -- prepare ----------------------------------------------------------------------------------


def prepare_optimization(
    request: OptimizationRequest,
    *,
    max_evaluations: int,
    search_path: Sequence[str] = (),
    read_source: Callable[[DataRef], BarSeries] | None = None,
) -> PreparedOptimization:
    """Check `request` (cheap checks first, then the bars read) or raise CommandRejected /
    BarDataError naming the problem, before anything runs."""
    method = _named(Method, request.method, "method")
    objective = Objective.named(str(request.objective))
    engine = _named(Engine, request.engine, "engine")
    executor = _named(ExecutorKind, request.executor, "executor")
    request = msgspec.structs.replace(
        request, method=method, objective=objective, engine=engine, executor=executor
    )
    _check_options(request)
    cls = strategy_class(request.backtest.strategy, tuple(search_path))
    space = ParameterSpace.of(cls, request.space, request.backtest.params)
    stages = request.walk_forward.folds if request.walk_forward else 1
    oos = request.walk_forward.folds if request.walk_forward else 0
    grid: list[dict[str, Any]] = []
    skipped = 0
    if method is Method.GRID:
        size = space.grid_size()
        if size is None:
            space.dimensions[0].points()  # raises, naming the continuous range
            raise AssertionError("unreachable")
        _check_size(size * stages + oos, max_evaluations, f"the grid has {size:,} points")
        grid, skipped, reason = _valid_points(space)
        if not grid:
            raise CommandRejected(f"no point of the grid is valid for {cls.name}: {reason}")
        first = grid[0]
    else:
        assert request.trials is not None
        _check_size(request.trials * stages + oos, max_evaluations, f"{request.trials:,} trials")
        first = _first_valid(space, request.seed)
    resolved = _engine(engine, request.backtest)
    backtest = msgspec.structs.replace(
        request.backtest, params={**request.backtest.params, **first}
    )
    template = prepare(backtest, search_path, read_source=read_source)
    bars = len(template.bars[template.spec.symbol])
    folds = split(bars, request.walk_forward) if request.walk_forward else []
    if not folds and bars < 2:
        raise BarDataError(f"{template.spec.symbol}: one bar cannot be optimised over")
    trials = len(grid) if method is Method.GRID else (request.trials or 0)
    return PreparedOptimization(
        request=request,
        space=space,
        evaluation=Evaluation(template, resolved),
        grid=grid,
        skipped=skipped,
        folds=folds,
        planned=trials * stages + oos,
    )


def _named(kind: Any, value: Any, name: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise CommandRejected(f"unknown {name} {value!r}: one of {allowed}") from None


def _check_options(request: OptimizationRequest) -> None:
    if request.method is Method.GRID and request.trials is not None:
        raise CommandRejected(
            "trials is for the random and optuna methods; a grid runs every point"
        )
    if request.method is not Method.GRID and request.trials is None:
        raise CommandRejected(f"the {request.method.value} method needs a number of trials")
    if request.trials is not None and request.trials < 1:
        raise CommandRejected(f"trials must be at least 1, got {request.trials}")
    if request.min_trades < 0:
        raise CommandRejected(f"min_trades must be at least 0, got {request.min_trades}")
    if request.workers is not None and request.workers < 1:
        raise CommandRejected(f"workers must be at least 1, got {request.workers}")
    if request.address is not None and request.executor is not ExecutorKind.RAY:
        raise CommandRejected("address is for the ray executor")


def _check_size(evaluations: int, limit: int, what: str) -> None:
    if evaluations > limit:
        raise CommandRejected(
            f"{what}: {evaluations:,} evaluations exceed the limit of {limit:,}; "
            "narrow the space or use fewer trials or folds"
        )


def _valid_points(space: ParameterSpace) -> tuple[list[dict[str, Any]], int, str]:
    valid, skipped, reason = [], 0, ""
    for point in space.grid():
        try:
            space.check(point)
        except CommandRejected as exc:
            skipped += 1
            reason = reason or exc.message
            continue
        valid.append(point)
    return valid, skipped, reason


def _first_valid(space: ParameterSpace, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    reason = ""
    for _ in range(1_000):
        point = {d.name: d.draw(rng) for d in space.dimensions}
        try:
            space.check(point)
        except CommandRejected as exc:
            reason = exc.message
            continue
        return point
    raise CommandRejected(f"no valid point found in the space of {space.strategy.name}: {reason}")


def _engine(engine: Engine, backtest: BacktestRequest) -> Engine:
    kernels = supports(backtest.strategy) and len(backtest.data) == 1
    if engine is Engine.VECTORIZED and not supports(backtest.strategy):
        raise CommandRejected(
            f"engine vectorized: {backtest.strategy} has no kernels; use engine auto or event"
        )
    if engine is Engine.VECTORIZED and not kernels:
        raise CommandRejected(
            f"engine vectorized runs one symbol; this request has {len(backtest.data)}"
        )
    if engine is Engine.AUTO:
        return Engine.VECTORIZED if kernels else Engine.EVENT
    return engine


# -- the results --------------------------------------------------------------------------------


def _row(trial: Trial) -> dict[str, Any]:
    row: dict[str, Any] = {"fold": trial.fold, "trial": trial.number}
    row.update({_column(name): value for name, value in trial.params.items()})
    row["score"] = trial.score
    row["pruned"] = trial.pruned
    metrics = msgspec.to_builtins(trial.metrics) if trial.metrics else {}
    row.update({name: metrics.get(name) for name in METRICS})
    return row


def _column(name: str) -> str:
    """A parameter's column: its name, unless a metric has it."""
    taken = ("fold", "trial", "score", "pruned")
    return f"param_{name}" if name in METRICS or name in taken else name


def _table(
    rows: list[dict[str, Any]], names: list[str], *, walk_forward: bool, pruning: bool
) -> pl.DataFrame:
    """The results table; `fold` only with walk-forward, `pruned` only with Optuna."""
    schema: dict[str, Any] = {
        "fold": pl.Int64,
        "trial": pl.Int64,
        "score": pl.Float64,
        "pruned": pl.Boolean,
    }
    schema.update({name: pl.Float64 for name in METRICS})
    schema.update({"trades": pl.Int64, "fills": pl.Int64})
    columns = ["fold", "trial", *map(_column, names), "score", "pruned", *METRICS]
    frame = pl.DataFrame(rows, schema_overrides=schema, infer_schema_length=None, strict=False)
    if frame.is_empty():
        frame = pl.DataFrame(schema={c: schema.get(c, pl.Float64) for c in columns})
    frame = frame.select(columns)
    if not walk_forward:
        frame = frame.drop("fold")
    return frame if pruning else frame.drop("pruned")


def _trial_json(trial: Trial | None) -> dict[str, Any] | None:
    if trial is None:
        return None
    return {
        "trial": trial.number,
        "fold": trial.fold,
        "params": msgspec.to_builtins(trial.params),
        "score": trial.score,
        "metrics": msgspec.to_builtins(trial.metrics),
    }


def _walk_forward_json(plan: WalkForward | None, folds: list[FoldResult]) -> dict[str, Any] | None:
    if plan is None:
        return None
    scored = [f for f in folds if f.out_of_sample_metrics is not None]
    compounded = 1.0
    for result in scored:
        assert result.out_of_sample_metrics is not None
        compounded *= 1.0 + result.out_of_sample_metrics.total_return
    scores = [f.out_of_sample_score for f in folds if f.out_of_sample_score is not None]
    return {
        "folds": plan.folds,
        "in_sample": plan.in_sample,
        "anchored": plan.anchored,
        "results": [fold_json(f) for f in folds],
        "out_of_sample": {
            "folds_evaluated": len(scored),
            # Folds whose objective is undefined (no volatility, no drawdown) are left out
            # of the mean; `folds_scored` says how many it averages.
            "folds_scored": len(scores),
            "mean_score": sum(scores) / len(scores) if scores else None,
            "compounded_return": compounded - 1.0 if scored else None,
        },
    }


def fold_json(result: FoldResult) -> dict[str, Any]:
    """One fold as the report's walk-forward table has it."""
    best = result.best
    oos = msgspec.to_builtins(result.out_of_sample_metrics)
    return {
        "fold": result.fold.number,
        "in_sample_start": result.in_sample[0],
        "in_sample_end": result.in_sample[1],
        "out_of_sample_start": result.out_of_sample[0],
        "out_of_sample_end": result.out_of_sample[1],
        "best_params": None if best is None else msgspec.to_builtins(best.params),
        "in_sample_score": None if best is None else best.score,
        "out_of_sample": None if oos is None else {**oos, "score": result.out_of_sample_score},
    }
