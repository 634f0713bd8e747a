"""Health as the probes show it: the process, the loop, start-up, and readiness to trade
with each component's state."""

import msgspec

from veloz.model.enums import EnginePhase, TradingMode


class Health(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    status: str
    version: str
    uptime_s: float
    phase: EnginePhase
    mode: TradingMode


class Probe(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    status: str
    detail: str = ""


class ComponentHealth(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    status: str
    detail: str = ""


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    phase: EnginePhase
    mode: TradingMode
    mode_reason: str
    components: dict[str, ComponentHealth]
