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
    # What trades where, so that a live engine cannot be taken for anything else:
    # `trading` is "sim" (simulated prices and venue), "paper" (Binance's prices, the
    # simulated venue), "testnet" (Binance's spot testnet) or "live" (Binance spot, real
    # money); `market_source` and `execution_mode` are the settings it follows from.
    trading: str = ""
    market_source: str = ""
    execution_mode: str = ""
    # "engine", or "gateway" for a replica answering for its engine (then with the
    # components `engine`, its link, and `stream`, how far behind the events it is).
    served_by: str = "engine"
