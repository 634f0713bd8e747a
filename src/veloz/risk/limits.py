"""Risk limits: global defaults plus per-symbol overrides, as `risk_limits.yaml` states
them, validated into Structs. An error names the field and the line it is on, and a file
that does not validate is refused whole.

    defaults:            # every symbol, unless it overrides a field
      max_qty: 10
      price_band_pct: 10
    max_open_orders: 500 # all symbols together
    symbols:
      BTCUSDT:
        max_position_qty: 2
"""

import hashlib
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import yaml

DEFAULT_PRICE_BAND_PCT = Decimal(10)


class RiskLimitsError(ValueError):
    """A limits file that cannot be used; the message names the file, line and field."""


class SymbolLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Per-order and per-symbol limits; None means no limit."""

    min_qty: Decimal | None = None
    max_qty: Decimal | None = None
    min_notional: Decimal | None = None
    max_notional: Decimal | None = None
    price_band_pct: Decimal | None = None
    max_position_qty: Decimal | None = None
    max_position_notional: Decimal | None = None
    max_open_orders: int | None = None

    def overridden_by(self, override: "SymbolLimits") -> "SymbolLimits":
        """These limits with every field `override` sets replacing ours."""
        changes = {
            name: getattr(override, name)
            for name in self.__struct_fields__
            if getattr(override, name) is not None
        }
        return msgspec.structs.replace(self, **changes)


class BreakerLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """When the circuit breaker halts trading; None disables that trigger."""

    max_rejections: int | None = None  # risk denials and venue rejections within window_s
    max_venue_errors: int | None = None  # failed sends to the venue within window_s
    window_s: Decimal = Decimal(60)
    max_loss: Decimal | None = None  # equity fall from its high within loss_window_s
    loss_window_s: Decimal = Decimal(300)
    cooldown_s: Decimal = Decimal(300)  # HALTED this long, unless an admin resets it


class RiskLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    defaults: SymbolLimits = SymbolLimits(price_band_pct=DEFAULT_PRICE_BAND_PCT)
    max_open_orders: int | None = None
    symbols: dict[str, SymbolLimits] = msgspec.field(default_factory=dict)
    breaker: BreakerLimits = BreakerLimits()
    # Drawdown from the equity peak (%): a `risk` warning above the first, READONLY above
    # the second. None turns that action off.
    drawdown_warning_pct: Decimal | None = Decimal(10)
    drawdown_critical_pct: Decimal | None = Decimal(20)

    @property
    def act_on_equity(self) -> bool:
        """Whether any limit acts on the equity (the drawdown levels, the breaker's loss
        window), so the book must be valued on every price."""
        return (
            self.drawdown_warning_pct is not None
            or self.drawdown_critical_pct is not None
            or self.breaker.max_loss is not None
        )

    def for_symbol(self, symbol: str) -> SymbolLimits:
        override = self.symbols.get(symbol)
        return self.defaults if override is None else self.defaults.overridden_by(override)


class LoadedLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Limits in force and where they came from (for `GET /api/risk/limits`)."""

    limits: RiskLimits
    source: str | None
    loaded_at_ns: int
    sha256: str | None


def builtin_limits() -> LoadedLimits:
    return LoadedLimits(limits=RiskLimits(), source=None, loaded_at_ns=time.time_ns(), sha256=None)


def load_limits(path: Path) -> LoadedLimits:
    """Read and validate `path`; raise RiskLimitsError, changing nothing, if it is unusable."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise RiskLimitsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return LoadedLimits(
        limits=parse_limits(text, str(path)),
        source=str(path),
        loaded_at_ns=time.time_ns(),
        sha256=hashlib.sha256(text.encode()).hexdigest(),
    )


def parse_limits(text: str, name: str = "risk_limits.yaml") -> RiskLimits:
    try:
        root = yaml.compose(text, Loader=yaml.CSafeLoader)
        data = yaml.load(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise RiskLimitsError(f"{name}{where}: not valid YAML: {exc}") from None
    if data is None:
        return RiskLimits()
    try:
        limits = msgspec.convert(_exact(data), RiskLimits)
    except msgspec.ValidationError as exc:
        path = _error_path(str(exc))
        line = _line_of(root, path)
        unknown = _unknown_field(str(exc))
        if unknown is not None:
            line = _line_of_key(root, unknown) or line
            path = [*path, unknown]
        raise RiskLimitsError(
            f"{name} line {line}: {'.'.join(path) or 'top level'}: {exc}"
        ) from None
    for path, problem in _range_problems(limits):
        raise RiskLimitsError(f"{name} line {_line_of(root, path)}: {'.'.join(path)}: {problem}")
    return limits


def _exact(value: Any) -> Any:
    """YAML reads 0.1 as a float; limits are exact, so take the float's shortest repr."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {key: _exact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_exact(item) for item in value]
    return value


def _error_path(message: str) -> list[str]:
    """`... - at `$.symbols.BTCUSDT.max_qty`` -> ["symbols", "BTCUSDT", "max_qty"]."""
    marker = "at `$"
    if marker not in message:
        return []
    raw = message.split(marker, 1)[1].split("`", 1)[0]
    parts = raw.replace("[", ".").replace("]", "").split(".")
    return [part for part in parts if part and part != "..."]


def _unknown_field(message: str) -> str | None:
    marker = "unknown field `"
    return message.split(marker, 1)[1].split("`", 1)[0] if marker in message else None


def _line_of_key(node: yaml.Node | None, key: str) -> int | None:
    """The line of the first mapping key named `key` anywhere under `node`."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if getattr(key_node, "value", None) == key:
                return int(key_node.start_mark.line) + 1
            found = _line_of_key(value_node, key)
            if found is not None:
                return found
    return None


def _range_problems(limits: RiskLimits) -> list[tuple[list[str], str]]:
    sections: list[tuple[list[str], SymbolLimits | BreakerLimits]] = [
        (["defaults"], limits.defaults),
        (["breaker"], limits.breaker),
    ]
    sections += [(["symbols", symbol], value) for symbol, value in limits.symbols.items()]
    problems = []
    if limits.max_open_orders is not None and limits.max_open_orders < 0:
        problems.append((["max_open_orders"], "must not be negative"))
    for prefix, section in sections:
        for field in section.__struct_fields__:
            value = getattr(section, field)
            if value is None:
                continue
            # Finiteness first: comparing a Decimal NaN raises instead of answering.
            if (isinstance(value, Decimal) and not value.is_finite()) or value < 0:
                problems.append(([*prefix, field], f"must be a finite number >= 0, got {value}"))
        if not isinstance(section, SymbolLimits):
            continue
        for low, high in (("min_qty", "max_qty"), ("min_notional", "max_notional")):
            lo, hi = getattr(section, low), getattr(section, high)
            if lo is not None and hi is not None and lo > hi:
                problems.append(([*prefix, low], f"{low} {lo} is above {high} {hi}"))
    return problems


def _line_of(node: yaml.Node | None, path: list[str]) -> int:
    """The 1-based line of the deepest node along `path` that exists."""
    line = node.start_mark.line + 1 if node is not None else 1
    for key in path:
        if not isinstance(node, yaml.MappingNode):
            break
        match = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
        if match is None:
            break
        key_node = next(k for k, v in node.value if v is match)
        line, node = key_node.start_mark.line + 1, match
    return line
