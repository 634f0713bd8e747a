"""Finding strategies and reading their parameters: every refusal names what is wrong."""

import sys
from decimal import Decimal
from pathlib import Path

import pytest

from veloz.model.errors import CommandRejected
from veloz.strategy.builtin.ema_cross import EmaCross, EmaCrossParams
from veloz.strategy.builtin.grid import Grid
from veloz.strategy.registry import (
    params_schema,
    parse_assignments,
    parse_params,
    strategy_class,
)


def test_builtins_by_name() -> None:
    assert strategy_class("ema_cross") is EmaCross
    assert strategy_class("grid") is Grid


def test_parameters_from_text_are_typed() -> None:
    params = parse_params(EmaCross, {"fast": "5", "slow": "8", "qty": "0.002"})
    assert params == EmaCrossParams(fast=5, slow=8, qty=Decimal("0.002"))


def test_defaults_fill_what_is_not_given() -> None:
    assert parse_params(EmaCross, {}) == EmaCrossParams(fast=10, slow=20, qty=Decimal("0.001"))


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"fast": "x"}, "parameter fast"),
        ({"fast": "0"}, "parameter fast"),
        ({"slow": "100000"}, "parameter slow"),
        ({"qty": "-1"}, "qty"),
        ({"qty": "nan"}, "qty"),
        ({"fast": "30", "slow": "20"}, "fast (30) must be shorter than slow (20)"),
        ({"speed": "1"}, "unknown parameter speed"),
    ],
)
def test_bad_parameters_are_refused_by_name(raw: dict[str, str], named: str) -> None:
    with pytest.raises(CommandRejected) as refused:
        parse_params(EmaCross, raw)
    assert refused.value.code == "bad_params"
    assert named in refused.value.message


def test_grid_bounds_must_be_ordered() -> None:
    with pytest.raises(CommandRejected, match=r"lower .* must be below upper"):
        parse_params(Grid, {"lower": "200", "upper": "100"})


def test_unknown_strategy_lists_the_builtins() -> None:
    with pytest.raises(
        CommandRejected,
        match="built-in ones are bollinger_reversion, dca, donchian_breakout, ema_cross, grid, "
        "market_making, rsi_reversion,",
    ):
        strategy_class("momentum")


def test_own_strategy_from_module_and_class(tmp_path: Path) -> None:
    (tmp_path / "my_strats.py").write_text(
        "from veloz.strategy.base import Strategy\n"
        "class Quiet(Strategy):\n"
        "    name = 'quiet'\n"
        "class NotAStrategy:\n"
        "    pass\n"
    )
    try:
        found = strategy_class("my_strats:Quiet", [str(tmp_path)])
        assert found.name == "quiet"
        with pytest.raises(CommandRejected, match="not a Strategy subclass"):
            strategy_class("my_strats:NotAStrategy", [str(tmp_path)])
        with pytest.raises(CommandRejected, match="not a Strategy subclass"):
            strategy_class("my_strats:Missing", [str(tmp_path)])
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("my_strats", None)


def test_unimportable_module_is_named() -> None:
    with pytest.raises(CommandRejected, match="cannot import strategy module 'no_such_mod'"):
        strategy_class("no_such_mod:Thing")


def test_assignments() -> None:
    assert parse_assignments(["fast=10", " qty = 0.001 "]) == {"fast": "10", "qty": "0.001"}
    with pytest.raises(CommandRejected, match="NAME=VALUE"):
        parse_assignments(["fast"])
    with pytest.raises(CommandRejected, match="given twice"):
        parse_assignments(["fast=1", "fast=2"])


def test_schema_has_bounds_defaults_and_descriptions() -> None:
    schema = params_schema(EmaCross)
    fields = schema["$defs"]["EmaCrossParams"]["properties"]
    assert fields["fast"]["minimum"] == 1
    assert fields["fast"]["default"] == 10
    assert fields["qty"]["exclusiveMinimum"] == 0
    assert "description" in fields["slow"]
    assert schema["$defs"]["EmaCrossParams"]["additionalProperties"] is False
