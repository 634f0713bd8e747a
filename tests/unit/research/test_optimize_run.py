"""Running an optimisation in-process: the same table twice for a seed, the two engines
agreeing on the best, cancellation between chunks, walk-forward folds reported apart, and
the files written."""

import json
import pickle
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tests.unit.research.optimize_support import Reader, random_walk, request
from veloz.backtest.data import BarSeries
from veloz.backtest.engine import AccountType
from veloz.backtest.run import BacktestRequest, DataRef
from veloz.research.optimize import (
    Engine,
    OptimizationCancelled,
    OptimizationOutcome,
    ParamRange,
    WalkForward,
    prepare_optimization,
    write,
)
from veloz.research.optimize.evaluate import Evaluation
from veloz.research.optimize.executor import InlineExecutor


def run(**changes: Any) -> OptimizationOutcome:
    prepared = prepare_optimization(
        request(**changes), max_evaluations=10_000, read_source=Reader()
    )
    return prepared.run()


def test_grid_scores_every_valid_point_and_finds_the_best() -> None:
    outcome = run()
    results = outcome.results
    # fast {2,4,6,8,10} x slow {12,20,30,50}: all valid
    assert results.height == 20
    assert results.columns[:4] == ["trial", "fast", "slow", "score"]
    assert results["trial"].to_list() == list(range(20))
    assert results["score"].to_list() == results["sharpe"].to_list()
    assert outcome.best is not None
    assert outcome.best.score == results["score"].max()
    best_row = results.row(outcome.best.number, named=True)
    assert {"fast": best_row["fast"], "slow": best_row["slow"]} == outcome.best.params
    # the best backtest is the event-driven run of the best parameters: same figures
    assert outcome.best_backtest is not None
    stats = outcome.best_backtest.summary["statistics"]
    assert stats["sharpe"] == pytest.approx(outcome.best.score, rel=1e-9)


@pytest.mark.parametrize("method", ["grid", "random", "optuna"])
def test_the_same_seed_gives_the_same_table(method: str) -> None:
    changes: dict[str, Any] = {"method": method, "seed": 11}
    if method != "grid":
        changes.update(
            trials=12,
            space={"fast": ParamRange(low=2, high=30), "slow": ParamRange(low=10, high=80)},
        )
    first, second = run(**changes), run(**changes)
    assert first.results.equals(second.results)
    if method != "grid":
        assert first.results.height == 12
        assert (first.results["fast"] < first.results["slow"]).all()
        other = run(**{**changes, "seed": 12})
        assert not other.results.select("fast", "slow").equals(first.results.select("fast", "slow"))


def test_min_trades_leaves_the_trial_unscored() -> None:
    outcome = run(min_trades=10**6)
    assert outcome.results["score"].null_count() == outcome.results.height
    assert outcome.best is None and outcome.best_backtest is None


def test_vectorized_and_event_engines_agree() -> None:
    vectorized, event = run(engine="vectorized"), run(engine="event")
    assert vectorized.best is not None and event.best is not None
    assert vectorized.best.params == event.best.params
    for column in ("score", "total_return", "max_drawdown", "final_equity"):
        assert vectorized.results[column].to_list() == pytest.approx(
            event.results[column].to_list(), rel=1e-9
        )
    assert vectorized.results["trades"].to_list() == event.results["trades"].to_list()


def test_progress_counts_to_the_plan_and_stop_cancels_between_chunks() -> None:
    prepared = prepare_optimization(request(), max_evaluations=10_000, read_source=Reader())
    seen: list[tuple[int, int]] = []
    prepared.run(progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (prepared.planned, prepared.planned)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)

    class Chunks(InlineExecutor):
        """Counts the chunks evaluated."""

        evaluated = 0

        def map(self, fn, chunks):
            for result in super().map(fn, chunks):
                Chunks.evaluated += 1
                yield result

    executor = Chunks(prepared.evaluation)
    executor.workers = 20  # 20 points in chunks of 1 (ceil(20 / (4 x 20)))
    with pytest.raises(OptimizationCancelled):
        prepared.run(stop=lambda: Chunks.evaluated >= 3, executor=executor)
    assert Chunks.evaluated == 3


def test_walk_forward_reports_out_of_sample_apart() -> None:
    outcome = run(walk_forward=WalkForward(folds=3, in_sample=0.6))
    results = outcome.results
    assert results.columns[:2] == ["fold", "trial"]
    assert results.group_by("fold").len().sort("fold")["len"].to_list() == [20, 20, 20]
    assert len(outcome.folds) == 3
    for fold in outcome.folds:
        in_fold = results.filter(pl.col("fold") == fold.fold.number)
        assert fold.best is not None
        assert fold.best.score == in_fold["score"].max()
        assert fold.in_sample[1] < fold.out_of_sample[0]  # first and last bar of each
        assert fold.out_of_sample_metrics is not None
    assert outcome.best == outcome.folds[-1].best
    # the best backtest covers the window the best won on: its figures are the best's
    assert outcome.best is not None and outcome.best_backtest is not None
    stats = outcome.best_backtest.summary["statistics"]
    assert stats["sharpe"] == pytest.approx(outcome.best.score, rel=1e-9)
    summary = outcome.summary["walk_forward"]
    assert [f["fold"] for f in summary["results"]] == [1, 2, 3]
    product = 1.0
    for fold in outcome.folds:
        assert fold.out_of_sample_metrics is not None
        product *= 1 + fold.out_of_sample_metrics.total_return
    assert summary["out_of_sample"]["compounded_return"] == pytest.approx(product - 1)
    # the last out-of-sample window ends with the last bar (3,000 minutes from the first)
    assert summary["results"][-1]["out_of_sample_end"] == "2024-01-03T01:59:00Z"


def test_min_trades_chooses_in_sample_but_hides_no_out_of_sample_fold() -> None:
    """Out of sample a fold is scored by the objective however few trades it made: a
    minimum there would drop exactly the folds where the chosen parameters barely traded."""
    in_sample_trades = run(walk_forward=WalkForward(folds=3, in_sample=0.6)).results["trades"]
    # Higher than some out-of-sample windows (40 % of the in-sample length) reach.
    min_trades = int(in_sample_trades.median())  # type: ignore[arg-type]
    outcome = run(walk_forward=WalkForward(folds=3, in_sample=0.6), min_trades=min_trades)
    folds = outcome.folds
    assert any(
        f.out_of_sample_metrics is not None and f.out_of_sample_metrics.trades < min_trades
        for f in folds
    )
    for fold in folds:
        assert fold.out_of_sample_metrics is not None
        assert fold.out_of_sample_score == fold.out_of_sample_metrics.sharpe
    summary = outcome.summary["walk_forward"]["out_of_sample"]
    scores = [f.out_of_sample_score for f in folds if f.out_of_sample_score is not None]
    assert summary["folds_scored"] == len(scores) == 3
    assert summary["mean_score"] == pytest.approx(sum(scores) / 3)


def test_write_makes_the_table_and_summary_files(tmp_path: Path) -> None:
    outcome = run(walk_forward=WalkForward(folds=2))
    written = write(outcome, tmp_path / "out")
    names = {p.name for p in written}
    assert names == {"results.parquet", "results.csv", "summary.json", "report.html"}
    assert pl.read_parquet(tmp_path / "out" / "results.parquet").equals(outcome.results)
    assert pl.read_csv(tmp_path / "out" / "results.csv").height == outcome.results.height
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert outcome.best is not None
    assert summary["best"]["params"] == outcome.best.params
    assert summary["evaluations"] == outcome.results.height + 2
    assert not list((tmp_path / "out").glob(".*partial"))
    html = (tmp_path / "out" / "report.html").read_text()
    assert "ema_cross" in html and "sharpe" in html
    assert "2024-01-03T01:59:00Z" in html  # the walk-forward table: the last window's end


def test_evaluation_crosses_a_process_boundary() -> None:
    prepared = prepare_optimization(request(), max_evaluations=10_000, read_source=Reader())
    copy = pickle.loads(pickle.dumps(prepared.evaluation))
    assert isinstance(copy, Evaluation)
    assert (
        copy.template.bars["BTCUSDT"].close.tolist()
        == prepared.template.bars["BTCUSDT"].close.tolist()
    )


def test_optuna_prunes_trials_below_the_median_at_half_way() -> None:
    space = {"fast": ParamRange(low=2, high=40), "slow": ParamRange(low=10, high=200)}
    prepared = prepare_optimization(
        request(method="optuna", trials=48, seed=5, space=space),
        max_evaluations=10_000,
        read_source=Reader(),
    )
    seen: list[tuple[int, int]] = []
    outcome = prepared.run(progress=lambda done, total: seen.append((done, total)))
    results = outcome.results
    assert results.height == 48
    assert seen[-1] == (48, 48)
    pruned = results.filter(pl.col("pruned"))
    assert pruned.height > 0
    assert min(pruned["trial"]) >= 8  # the first batch only sets the median
    assert pruned["score"].null_count() == pruned.height
    assert pruned["total_return"].null_count() == pruned.height
    kept = results.filter(~pl.col("pruned"))
    assert kept["total_return"].null_count() == 0


def test_two_symbols_run_event_driven_over_each_window() -> None:
    series = {"BTCUSDT": random_walk(seed=1), "ETHUSDT": random_walk(seed=2)}

    def read(ref: DataRef) -> BarSeries:
        return replace(series[ref.symbol], symbol=ref.symbol)

    backtest = BacktestRequest(
        strategy="ema_cross",
        data=[DataRef(symbol=s, source="memory:" + s) for s in series],
        params={"qty": "0.5"},
        account=AccountType.MARGIN,
    )
    prepared = prepare_optimization(
        request(backtest=backtest, walk_forward=WalkForward(folds=2)),
        max_evaluations=1_000,
        read_source=read,
    )
    assert prepared.evaluation.engine is Engine.EVENT  # the kernels trade one symbol
    outcome = prepared.run()
    assert outcome.results.height == 2 * 20
    assert [s["symbol"] for s in outcome.summary["data"]] == ["BTCUSDT", "ETHUSDT"]
    assert all(f.out_of_sample_metrics is not None for f in outcome.folds)
