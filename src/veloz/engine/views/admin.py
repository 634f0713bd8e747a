"""What the admin commands answer: `{"ok", "mode", ...}` with what each did."""

import msgspec

from veloz.model.enums import TradingMode


class ModeAnswer(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool = True
    mode: TradingMode
    changed: bool


class LogLevelAnswer(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool = True
    mode: TradingMode
    level: str
    # The processes now logging at `level`: "engine", and "gateway" when a gateway took
    # the command (its other replicas and the projector keep theirs). The default is how
    # a gateway reads the answer of an engine from before the field (a rolling upgrade).
    applied_to: list[str] = msgspec.field(default_factory=lambda: ["engine"])


class ReloadAnswer(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool = True
    mode: TradingMode
    source: str | None
    sha256: str | None
    loaded_at_ns: int


class CheckpointAnswer(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool = True
    mode: TradingMode
    seq: int
