"""Which strategies exist and how their parameters are read: the built-ins by name, a
user's own by `module:Class` (importable from `sys.path` or a `VELOZ_STRATEGY_PATH`
directory), parameters converted and checked against the strategy's `Params` Struct.

Every refusal is a CommandRejected(bad_params) naming the strategy or the parameter, so
the API answers 400 and the CLI exits 2 before anything is created.
"""

import importlib
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from veloz.model.errors import CommandRejected
from veloz.strategy.base import Strategy, StrategyParams
from veloz.strategy.builtin.bollinger_reversion import BollingerReversion
from veloz.strategy.builtin.dca import Dca
from veloz.strategy.builtin.donchian_breakout import DonchianBreakout
from veloz.strategy.builtin.ema_cross import EmaCross
from veloz.strategy.builtin.grid import Grid
from veloz.strategy.builtin.market_making import MarketMaking
from veloz.strategy.builtin.rsi_reversion import RsiReversion

BUILTIN: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (
        EmaCross,
        Grid,
        RsiReversion,
        BollingerReversion,
        DonchianBreakout,
        MarketMaking,
        Dca,
    )
}

_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`")
_FIELD_PATH = re.compile(r"at `\$\.([A-Za-z0-9_]+)`")


def strategy_class(name: str, search_path: Iterable[str] = ()) -> type[Strategy]:
    """The built-in strategy `name`, or the class `module:Class` names."""
    if name in BUILTIN:
        return BUILTIN[name]
    if ":" not in name:
        raise CommandRejected(
            f"unknown strategy {name!r}: built-in ones are {', '.join(sorted(BUILTIN))}, "
            "or name your own as module:Class"
        )
    module_name, _, class_name = name.partition(":")
    for directory in search_path:
        if directory and directory not in sys.path:
            sys.path.append(directory)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CommandRejected(f"cannot import strategy module {module_name!r}: {exc}") from None
    found = getattr(module, class_name, None)
    if not (isinstance(found, type) and issubclass(found, Strategy)):
        raise CommandRejected(f"{name!r} is not a Strategy subclass")
    if not getattr(found, "name", None):
        raise CommandRejected(f"strategy class {name!r} must set a `name`")
    return found


def parse_params(cls: type[Strategy], raw: Mapping[str, Any]) -> StrategyParams:
    """The strategy's parameters from loosely typed values ("10" is taken for 10)."""
    try:
        return msgspec.convert(dict(raw), cls.Params, strict=False)
    except msgspec.ValidationError as exc:
        raise CommandRejected(_explain(cls, str(exc))) from None


def parse_assignments(assignments: Iterable[str]) -> dict[str, str]:
    """`["fast=10", "qty=0.001"]` -> {"fast": "10", "qty": "0.001"}."""
    values: dict[str, str] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CommandRejected(f"parameter {item!r} must be NAME=VALUE")
        if key.strip() in values:
            raise CommandRejected(f"parameter {key.strip()} is given twice")
        values[key.strip()] = value.strip()
    return values


def params_schema(cls: type[Strategy]) -> dict[str, Any]:
    """The JSON schema of the strategy's parameters (types, bounds, defaults, descriptions)."""
    return msgspec.json.schema(cls.Params)


def _explain(cls: type[Strategy], message: str) -> str:
    names = ", ".join(f.name for f in msgspec.structs.fields(cls.Params))
    if unknown := _UNKNOWN_FIELD.search(message):
        return f"unknown parameter {unknown.group(1)} for {cls.name}; parameters: {names}"
    if field := _FIELD_PATH.search(message):
        detail = message[: field.start()].strip().rstrip("-").strip()
        return f"parameter {field.group(1)} of {cls.name}: {detail}"
    return f"parameters of {cls.name}: {message}"
