"""Parameter spaces: checked against the strategy's own types and bounds before anything
runs, and the points a grid, a random draw and Optuna give."""

from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from veloz.model.errors import CommandRejected
from veloz.research.optimize.space import ParameterSpace, ParamRange
from veloz.strategy.base import Strategy
from veloz.strategy.builtin.bollinger_reversion import BollingerReversion
from veloz.strategy.builtin.ema_cross import EmaCross
from veloz.strategy.builtin.rsi_reversion import RsiReversion


def space(
    strategy: type[Strategy] = EmaCross, fixed: dict[str, Any] | None = None, **ranges: ParamRange
) -> ParameterSpace:
    return ParameterSpace.of(strategy, ranges, fixed or {})


def test_int_range_points_include_both_ends() -> None:
    (fast,) = space(fast=ParamRange(low=2, high=10, step=4)).dimensions
    assert fast.kind == "int"
    assert fast.points() == [2, 6, 10]
    assert space(fast=ParamRange(low=3, high=5)).dimensions[0].points() == [3, 4, 5]


def test_float_steps_are_exact_decimals() -> None:
    (width,) = space(BollingerReversion, width=ParamRange(low=0.1, high=0.5, step=0.1)).dimensions
    assert width.points() == [0.1, 0.2, 0.3, 0.4, 0.5]  # not 0.30000000000000004


def test_decimal_field_gives_decimals() -> None:
    (qty,) = space(qty=ParamRange(values=["0.001", "0.01"])).dimensions
    assert qty.values == (Decimal("0.001"), Decimal("0.01"))
    (qty,) = space(qty=ParamRange(low=0.5, high=1, step=0.25)).dimensions
    assert qty.points() == [Decimal("0.5"), Decimal("0.75"), Decimal("1")]


def test_values_are_converted_to_the_field_type() -> None:
    (slow,) = space(slow=ParamRange(values=["20", "30"])).dimensions
    assert slow.values == (20, 30)
    (exit_,) = space(BollingerReversion, exit=ParamRange(values=["middle", "upper"])).dimensions
    assert exit_.values == ("middle", "upper")


@pytest.mark.parametrize(
    ("strategy", "ranges", "words"),
    [
        (EmaCross, {"fast": ParamRange(low=0, high=10)}, ["fast", "0"]),  # ge=1
        (EmaCross, {"slow": ParamRange(low=20, high=20_000)}, ["slow", "20000"]),  # le=10,000
        (EmaCross, {"slow": ParamRange(values=[30, 0])}, ["slow", "0"]),
        (RsiReversion, {"oversold": ParamRange(low=0, high=30)}, ["oversold"]),  # gt=0
        (EmaCross, {"speed": ParamRange(low=1, high=2)}, ["unknown parameter speed"]),
        (EmaCross, {"fast": ParamRange(low=1.5, high=4)}, ["integer"]),
        (EmaCross, {"fast": ParamRange(low=9, high=4)}, ["low", "above high"]),
        (EmaCross, {"fast": ParamRange(low=1, high=4, step=0)}, ["step"]),
        (EmaCross, {"fast": ParamRange(high=4)}, ["low and high"]),
        (EmaCross, {"fast": ParamRange(values=[])}, ["empty"]),
        (EmaCross, {"fast": ParamRange(values=[2, 2])}, ["twice"]),
        (EmaCross, {"fast": ParamRange(values=[2], low=1)}, ["not both"]),
        (BollingerReversion, {"width": ParamRange(low=0.5, high=2, step=0.5, log=True)}, ["log"]),
        (BollingerReversion, {"exit": ParamRange(low=1, high=2)}, ["numeric"]),
        (EmaCross, {}, ["empty"]),
    ],
)
def test_bad_ranges_are_refused_naming_the_problem(
    strategy: type, ranges: dict[str, ParamRange], words: list[str]
) -> None:
    with pytest.raises(CommandRejected) as caught:
        ParameterSpace.of(strategy, ranges, {})
    for word in words:
        assert word in caught.value.message


def test_a_parameter_cannot_be_fixed_and_searched() -> None:
    with pytest.raises(CommandRejected, match="both fixed and searched"):
        space(fixed={"fast": 5}, fast=ParamRange(low=2, high=4))


def test_grid_size_and_points_with_a_continuous_range() -> None:
    ranged = space(
        BollingerReversion,
        period=ParamRange(low=10, high=30, step=10),
        width=ParamRange(low=1.0, high=3.0),
    )
    assert ranged.grid_size() is None
    with pytest.raises(CommandRejected, match="needs a step"):
        list(ranged.grid())
    gridded = space(fast=ParamRange(low=2, high=4), slow=ParamRange(values=[5, 6]))
    assert gridded.grid_size() == 6
    assert list(gridded.grid())[:3] == [
        {"fast": 2, "slow": 5},
        {"fast": 2, "slow": 6},
        {"fast": 3, "slow": 5},
    ]


def test_check_refuses_combinations_the_strategy_refuses() -> None:
    ema = space(
        fixed={"qty": "1"}, fast=ParamRange(low=2, high=40), slow=ParamRange(low=3, high=41)
    )
    assert ema.check({"fast": 5, "slow": 10}) == EmaCross.Params(fast=5, slow=10, qty=Decimal(1))
    with pytest.raises(CommandRejected, match="shorter than slow"):
        ema.check({"fast": 10, "slow": 10})


def test_draws_stay_in_range_on_the_step_and_log_uniform() -> None:
    rng = np.random.default_rng(0)
    (fast,) = space(fast=ParamRange(low=5, high=50, step=5)).dimensions
    drawn = {fast.draw(rng) for _ in range(500)}
    assert drawn == set(range(5, 55, 5))
    (width,) = space(BollingerReversion, width=ParamRange(low=0.01, high=10, log=True)).dimensions
    widths = np.array([width.draw(rng) for _ in range(4_000)])
    assert widths.min() >= 0.01 and widths.max() <= 10
    # log-uniform over three decades: each holds about a third of the draws
    below_0_1 = float(np.mean(widths < 0.1))
    assert 0.3 < below_0_1 < 0.37
