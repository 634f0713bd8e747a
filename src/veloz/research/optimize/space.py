"""The parameters an optimisation searches: each a list of values or a range, checked
against the strategy's own `Params` (type and bounds) before anything runs, and turned
into grid points, random draws or Optuna suggestions.

A range's kind comes from the parameter's declared type: an `int` field gives integer
points, a `float` or `Decimal` field decimal ones. Points are built with Decimal arithmetic
(`low + i * step`) so that a grid of 0.1 steps holds 0.3, not 0.30000000000000004.
"""

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import product
from typing import Any, Literal, get_type_hints

import msgspec
import numpy as np

from veloz.model.errors import CommandRejected
from veloz.strategy.base import Strategy, StrategyParams
from veloz.strategy.registry import parse_params

Kind = Literal["int", "float", "decimal", "values"]


class ParamRange(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """`{"values": [...]}`, or `{"low": .., "high": .., "step": .., "log": ..}` (both ends
    included; `step` is needed to grid a float range; `log` draws log-uniformly)."""

    values: list[Any] | None = None
    low: int | float | None = None
    high: int | float | None = None
    step: int | float | None = None
    log: bool = False


@dataclass(frozen=True)
class Dimension:
    """One searched parameter, checked: `values` are already of the field's type."""

    name: str
    kind: Kind
    values: tuple[Any, ...] = ()
    low: Decimal = Decimal(0)
    high: Decimal = Decimal(0)
    step: Decimal | None = None
    log: bool = False

    @property
    def size(self) -> int | None:
        """How many points a grid has on this dimension; None: a continuous range."""
        if self.kind == "values":
            return len(self.values)
        step = self.step if self.step is not None else (Decimal(1) if self.kind == "int" else None)
        if step is None:
            return None
        return int((self.high - self.low) // step) + 1

    def points(self) -> list[Any]:
        if self.kind == "values":
            return list(self.values)
        size = self.size
        if size is None:
            raise CommandRejected(
                f"space {self.name}: a float range needs a step to be gridded "
                "(low:high:step, or values, or --method random|optuna)"
            )
        step = self.step if self.step is not None else Decimal(1)
        return [self.typed(self.low + i * step) for i in range(size)]

    def typed(self, value: Decimal) -> Any:
        if self.kind == "int":
            return int(value)
        if self.kind == "decimal":
            return value.normalize()
        return float(value)

    def draw(self, rng: np.random.Generator) -> Any:
        """A uniform draw (log-uniform with `log`); on the step grid when there is one."""
        if self.kind == "values":
            return self.values[int(rng.integers(len(self.values)))]
        size = self.size
        if self.log:
            low, high = float(self.low), float(self.high)
            if self.kind == "int":
                drawn = math.exp(rng.uniform(math.log(low), math.log(high + 1)))
                return min(int(drawn), int(self.high))
            return self.typed(Decimal(repr(math.exp(rng.uniform(math.log(low), math.log(high))))))
        if size is not None:
            step = self.step if self.step is not None else Decimal(1)
            return self.typed(self.low + int(rng.integers(size)) * step)
        return self.typed(Decimal(repr(rng.uniform(float(self.low), float(self.high)))))

    def suggest(self, trial: Any) -> Any:
        """Optuna's suggestion for this dimension (`trial` is an optuna.Trial)."""
        if self.kind == "values":
            choice = trial.suggest_categorical(self.name, list(range(len(self.values))))
            return self.values[choice]
        if self.kind == "int":
            step = int(self.step) if self.step is not None else 1
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=step, log=self.log
            )
        suggested = trial.suggest_float(
            self.name,
            float(self.low),
            float(self.high),
            step=float(self.step) if self.step is not None else None,
            log=self.log,
        )
        return self.typed(Decimal(repr(suggested)))


@dataclass(frozen=True)
class ParameterSpace:
    """The searched dimensions of one strategy, with the parameters that stay fixed."""

    strategy: type[Strategy]
    dimensions: tuple[Dimension, ...]
    fixed: Mapping[str, Any]

    @classmethod
    def of(
        cls, strategy: type[Strategy], space: Mapping[str, ParamRange], fixed: Mapping[str, Any]
    ) -> "ParameterSpace":
        if not space:
            raise CommandRejected("the space is empty: give at least one parameter to search")
        fields = _fields(strategy.Params)
        dimensions = []
        for name, spec in space.items():
            if name not in fields:
                raise CommandRejected(
                    f"unknown parameter {name} for {strategy.name}; parameters: {', '.join(fields)}"
                )
            if name in fixed:
                raise CommandRejected(f"parameter {name} is both fixed and searched")
            annotation = _annotations(strategy.Params)[name]
            dimensions.append(_dimension(strategy.name, name, fields[name], annotation, spec))
        return cls(strategy, tuple(dimensions), dict(fixed))

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    def grid_size(self) -> int | None:
        """The number of grid points (valid or not); None when a range is continuous."""
        total = 1
        for dimension in self.dimensions:
            if (size := dimension.size) is None:
                return None
            total *= size
        return total

    def grid(self) -> Iterator[dict[str, Any]]:
        points = [d.points() for d in self.dimensions]
        for combination in product(*points):
            yield dict(zip(self.names, combination, strict=True))

    def check(self, point: Mapping[str, Any]) -> StrategyParams:
        """The strategy's parameters for `point`, or CommandRejected when the combination
        breaks a rule between parameters (fast must be shorter than slow...)."""
        return parse_params(self.strategy, {**self.fixed, **point})


def _fields(params: type[StrategyParams]) -> dict[str, Any]:
    info = msgspec.inspect.type_info(params)
    assert isinstance(info, msgspec.inspect.StructType)
    return {field.name: field for field in info.fields}


def _annotations(params: type[StrategyParams]) -> dict[str, Any]:
    """Each field's annotation with its bounds (Annotated[int, Meta(ge=1)]), which
    msgspec.convert checks a value against."""
    return get_type_hints(params, include_extras=True)


def _base(field: Any) -> Any:
    kind = field.type
    return kind.type if isinstance(kind, msgspec.inspect.Metadata) else kind


def _dimension(
    strategy: str, name: str, field: Any, python_type: Any, spec: ParamRange
) -> Dimension:
    label = f"space {name} of {strategy}"
    if spec.values is not None:
        if spec.low is not None or spec.high is not None or spec.step is not None or spec.log:
            raise CommandRejected(f"{label}: give values or low/high/step/log, not both")
        if not spec.values:
            raise CommandRejected(f"{label}: values is empty")
        values = tuple(_convert(label, python_type, v) for v in spec.values)
        if len(set(map(repr, values))) != len(values):
            raise CommandRejected(f"{label}: a value is given twice")
        return Dimension(name, "values", values=values)
    if spec.low is None or spec.high is None:
        raise CommandRejected(f"{label}: give values, or both low and high")
    base = _base(field)
    if isinstance(base, msgspec.inspect.IntType):
        kind: Kind = "int"
    elif isinstance(base, msgspec.inspect.FloatType):
        kind = "float"
    elif isinstance(base, msgspec.inspect.DecimalType):
        kind = "decimal"
    else:
        raise CommandRejected(f"{label}: a range needs a numeric parameter; give values")
    low, high = _number(label, "low", spec.low), _number(label, "high", spec.high)
    step = None if spec.step is None else _number(label, "step", spec.step)
    if kind == "int" and any(
        v is not None and v != v.to_integral_value() for v in (low, high, step)
    ):
        raise CommandRejected(f"{label}: {name} is an integer; low, high and step must be too")
    if low > high:
        raise CommandRejected(f"{label}: low ({low}) is above high ({high})")
    if step is not None and step <= 0:
        raise CommandRejected(f"{label}: step must be greater than 0, got {step}")
    if spec.log and step is not None and kind != "int":
        raise CommandRejected(f"{label}: a log range takes no step")
    if spec.log and low <= 0:
        raise CommandRejected(f"{label}: a log range needs low > 0, got {low}")
    for bound in (low, high):  # the field's own bounds (ge, le, gt, lt) at both ends
        _convert(label, python_type, int(bound) if kind == "int" else bound)
    return Dimension(name, kind, low=low, high=high, step=step, log=spec.log)


def _convert(label: str, python_type: Any, value: Any) -> Any:
    try:
        return msgspec.convert(value, python_type, strict=False)
    except msgspec.ValidationError as exc:
        raise CommandRejected(f"{label}: {value!r} is not allowed: {exc}") from None


def _number(label: str, name: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise CommandRejected(f"{label}: {name} must be a number, got {value!r}")
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except ArithmeticError:
        raise CommandRejected(f"{label}: {name} must be a number, got {value!r}") from None
    if not number.is_finite():
        raise CommandRejected(f"{label}: {name} must be finite, got {value!r}")
    return number


def points_key(point: Mapping[str, Any], names: Sequence[str]) -> tuple[str, ...]:
    """A hashable identity of a point, to draw each one once."""
    return tuple(repr(point[name]) for name in names)
