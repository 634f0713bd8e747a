"""The same optimisation on every executor gives the same results table: in-process, a
local process pool, and Ray (a local instance started for the test: in CI a Ray that cannot
start fails the test, elsewhere it skips). On NautilusTrader's 45,031 BTC 1-minute bars."""

import os
from typing import Any

import pytest

from tests.support.sample_bars import sample_path
from veloz.backtest.engine import AccountType
from veloz.backtest.run import BacktestRequest, DataRef
from veloz.research.optimize import (
    ExecutorKind,
    OptimizationCancelled,
    OptimizationOutcome,
    OptimizationRequest,
    ParamRange,
    WalkForward,
    prepare_optimization,
)
from veloz.research.optimize.executor import ExecutorUnavailable


def request(**changes: Any) -> OptimizationRequest:
    fields: dict[str, Any] = {
        "backtest": BacktestRequest(
            strategy="ema_cross",
            data=[DataRef(symbol="BTCUSDT", source=str(sample_path()))],
            params={"qty": "0.1"},
            account=AccountType.MARGIN,
        ),
        "space": {
            "fast": ParamRange(low=5, high=40, step=5),
            "slow": ParamRange(values=[30, 60, 120]),
        },
        "objective": "sortino",
        "min_trades": 5,
    }
    fields.update(changes)
    return OptimizationRequest(**fields)


def run(**changes: Any) -> OptimizationOutcome:
    return prepare_optimization(request(**changes), max_evaluations=10_000).run()


@pytest.fixture(scope="module")
def inline() -> OptimizationOutcome:
    return run(workers=1)


def test_local_pool_gives_the_in_process_results(inline: OptimizationOutcome) -> None:
    pooled = run(workers=2)
    assert pooled.summary["workers"] == 2
    assert pooled.results.equals(inline.results)
    assert inline.results.height == 21  # fast < slow: 5 + 8 + 8


def test_optuna_over_a_pool_is_deterministic() -> None:
    changes: dict[str, Any] = {
        "method": "optuna",
        "trials": 20,
        "seed": 3,
        "space": {"fast": ParamRange(low=2, high=60), "slow": ParamRange(low=10, high=240)},
    }
    one, two = run(workers=1, **changes), run(workers=2, **changes)
    assert one.results.height == 20
    assert one.results.equals(two.results)


def test_walk_forward_on_the_event_engine_over_a_pool() -> None:
    changes: dict[str, Any] = {
        "walk_forward": WalkForward(folds=2, in_sample=0.7),
        "space": {"fast": ParamRange(values=[10, 30]), "slow": ParamRange(values=[60, 120])},
    }
    vectorized = run(workers=2, **changes)
    event = run(workers=2, engine="event", **changes)
    assert [f.best for f in vectorized.folds if f.best is None] == []
    assert [f.best.params for f in vectorized.folds if f.best] == [
        f.best.params for f in event.folds if f.best
    ]
    assert event.results["score"].to_list() == pytest.approx(
        vectorized.results["score"].to_list(), rel=1e-9
    )


def test_stop_cancels_a_pool_run_between_chunks() -> None:
    prepared = prepare_optimization(request(workers=2, engine="event"), max_evaluations=10_000)
    seen: list[int] = []
    with pytest.raises(OptimizationCancelled):
        prepared.run(progress=lambda done, total: seen.append(done), stop=lambda: bool(seen))
    assert len(seen) == 1 and seen[0] < prepared.planned


def on_ray(**changes: Any) -> OptimizationOutcome:
    try:
        return run(executor=ExecutorKind.RAY, workers=2, **changes)
    except ExecutorUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Ray must start in CI: {exc}")
        pytest.skip(f"Ray cannot start here: {exc}")


@pytest.mark.slow
def test_ray_gives_the_in_process_results(inline: OptimizationOutcome) -> None:
    outcome = on_ray()
    assert outcome.summary["executor"] == "ray"
    assert outcome.results.equals(inline.results)


@pytest.mark.slow
def test_optuna_on_ray_gives_the_in_process_study() -> None:
    # Many batches: every batch maps again on the same Ray instance.
    changes: dict[str, Any] = {
        "method": "optuna",
        "trials": 40,
        "seed": 9,
        "space": {"fast": ParamRange(low=2, high=60), "slow": ParamRange(low=61, high=160)},
    }
    assert on_ray(**changes).results.equals(run(workers=1, **changes).results)
