"""Every refusal of `prepare_optimization` names what is wrong and comes before the bars
are read (the strategy, the space, the method, the objective, the size) or, for the data
itself, before anything has run."""

from decimal import Decimal
from typing import Any

import msgspec
import pytest

from tests.unit.research.optimize_support import Reader, random_walk, request
from veloz.backtest.data import BarDataError
from veloz.backtest.run import BacktestRequest, DataRef
from veloz.model.errors import CommandRejected
from veloz.research.optimize import (
    Engine,
    OptimizationRequest,
    ParamRange,
    WalkForward,
    prepare_optimization,
)


def backtest(**changes: Any) -> BacktestRequest:
    fields: dict[str, Any] = {
        "strategy": "ema_cross",
        "data": [DataRef(symbol="BTCUSDT", source="memory:random-walk")],
    }
    fields.update(changes)
    return BacktestRequest(**fields)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"backtest": backtest(strategy="nope")}, ["unknown strategy 'nope'"]),
        ({"space": {"speed": ParamRange(low=1, high=3)}}, ["unknown parameter speed"]),
        ({"space": {"fast": ParamRange(low=0, high=3)}}, ["fast", "0"]),
        ({"objective": "profit"}, ["unknown objective 'profit'", "sharpe"]),
        ({"method": "annealing"}, ["unknown method 'annealing'"]),
        ({"engine": "gpu"}, ["unknown engine 'gpu'"]),
        ({"executor": "k8s"}, ["unknown executor 'k8s'"]),
        ({"trials": 10}, ["trials is for the random and optuna"]),
        ({"method": "optuna"}, ["optuna method needs a number of trials"]),
        ({"address": "ray://somewhere:10001"}, ["address is for the ray executor"]),
        (
            {"space": {"fast": ParamRange(low=2, high=40), "slow": ParamRange(low=3, high=3_000)}},
            ["116,922 points", "exceed the limit of 10,000"],
        ),
        (
            {"method": "random", "trials": 2_000, "walk_forward": WalkForward(folds=5)},
            ["10,005 evaluations exceed the limit of 10,000"],
        ),
        (
            {"space": {"fast": ParamRange(values=[30, 40]), "slow": ParamRange(values=[10, 20])}},
            ["no point of the grid is valid", "shorter than slow"],
        ),
        (
            {
                "backtest": backtest(strategy="grid"),
                "engine": "vectorized",
                "space": {"levels": ParamRange(values=[3, 5])},
            },
            ["grid has no kernels"],
        ),
        ({"backtest": backtest(fee_bps=Decimal(-1))}, ["fee_bps"]),
    ],
)
def test_refused_before_reading_data(changes: dict[str, Any], words: list[str]) -> None:
    reader = Reader()
    with pytest.raises(CommandRejected) as caught:
        prepare_optimization(request(**changes), max_evaluations=10_000, read_source=reader)
    for word in words:
        assert word in caught.value.message
    assert reader.calls == 0


def test_a_period_without_data_is_refused() -> None:
    window = backtest(start="2030-01-01", end="2030-02-01")
    with pytest.raises(BarDataError, match="no bars between 2030-01-01 and 2030-02-01"):
        prepare_optimization(request(backtest=window), max_evaluations=100, read_source=Reader())


def test_walk_forward_too_fine_for_the_data_is_refused() -> None:
    reader = Reader(random_walk(bars=50))
    with pytest.raises(CommandRejected, match="40 folds over 50 bars"):
        prepare_optimization(
            request(walk_forward=WalkForward(folds=40)), max_evaluations=10_000, read_source=reader
        )


def test_the_request_decodes_from_json_and_unknown_fields_are_refused() -> None:
    body = {
        "backtest": {"strategy": "ema_cross", "data": [{"symbol": "BTCUSDT", "source": "x.csv"}]},
        "space": {"fast": {"low": 2, "high": 9, "step": 1}, "slow": {"values": [20, 30]}},
        "method": "optuna",
        "trials": 20,
        "objective": "sortino",
        "walk_forward": {"folds": 3, "in_sample": 0.75, "anchored": True},
    }
    decoded = msgspec.convert(body, OptimizationRequest)
    assert decoded.space["slow"].values == [20, 30]
    assert decoded.walk_forward == WalkForward(folds=3, in_sample=0.75, anchored=True)
    with pytest.raises(msgspec.ValidationError, match="objective"):
        msgspec.convert({**body, "objective": "profit"}, OptimizationRequest)
    with pytest.raises(msgspec.ValidationError, match="unknown field `speed`"):
        msgspec.convert({**body, "speed": 1}, OptimizationRequest)


def test_prepared_counts_the_valid_points_and_chooses_the_engine() -> None:
    wide = {"fast": ParamRange(low=2, high=20, step=2), "slow": ParamRange(values=[5, 12, 30])}
    prepared = prepare_optimization(
        request(space=wide, walk_forward=WalkForward(folds=2)),
        max_evaluations=1_000,
        read_source=Reader(),
    )
    # fast 2..20 step 2 (10) x slow {5, 12, 30}: fast < slow leaves 2 + 5 + 10 = 17
    assert len(prepared.grid) == 17 and prepared.skipped == 13
    assert prepared.planned == 17 * 2 + 2  # in sample per fold, plus one out of sample each
    assert prepared.evaluation.engine is Engine.VECTORIZED
    event = prepare_optimization(
        request(engine="event"), max_evaluations=1_000, read_source=Reader()
    )
    assert event.evaluation.engine is Engine.EVENT
