"""The health model behind `/health/*`: each component's state, and whether the engine is
started, live and ready to trade."""

from typing import TYPE_CHECKING

import msgspec

from veloz.market.engine import FeedStatus
from veloz.model.enums import TradingMode
from veloz.runtime.live import LiveEngine

if TYPE_CHECKING:
    from veloz.persistence.service import HistoryService

LIVE_LAG_LIMIT_S = 1.0


class ComponentHealth(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    status: str
    detail: str = ""


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    phase: str
    mode: TradingMode
    mode_reason: str
    components: dict[str, ComponentHealth]


def readiness(
    engine: LiveEngine, default_symbol: str, history: "HistoryService | None" = None
) -> Readiness:
    """Ready to trade: started, journal writable, market data fresh, venue connected, not
    in maintenance. READONLY is ready (reads and cancels work); the mode is reported."""
    components = {
        "journal": journal_health(engine),
        "market": market_health(engine, default_symbol),
        "venue": venue_health(engine),
        "database": database_health(history),
        "cache": ComponentHealth(ok=True, status="not_configured", detail="VELOZ_REDIS_URL unset"),
    }
    ok = (
        engine.ready
        and all(c.ok for c in components.values())
        and engine.mode is not TradingMode.MAINTENANCE
    )
    return Readiness(
        ok=ok,
        phase=engine.phase,
        mode=engine.mode,
        mode_reason=engine.mode_reason,
        components=components,
    )


def journal_health(engine: LiveEngine) -> ComponentHealth:
    if engine.journal is None:
        return ComponentHealth(ok=False, status="unavailable", detail=engine.journal_error or "")
    if engine.journal.failure is not None:
        return ComponentHealth(ok=False, status="failed", detail=engine.journal.failure)
    if engine.journal_problems:
        detail = (
            f"{len(engine.journal_problems)} problems found at start: {engine.journal_problems[0]}"
        )
        return ComponentHealth(ok=True, status="damaged", detail=detail)
    return ComponentHealth(ok=True, status="ok", detail=f"next sequence {engine.journal.next_seq}")


def market_health(engine: LiveEngine, symbol: str) -> ComponentHealth:
    now = engine.clock.time_ns()
    status = engine.market.status(symbol, now)
    age = engine.market.age_ns(symbol, now)
    detail = (
        f"{symbol} quote {age // 1_000_000} ms old" if age is not None else f"{symbol}: no quote"
    )
    return ComponentHealth(ok=status is FeedStatus.OK, status=status, detail=detail)


def venue_health(engine: LiveEngine) -> ComponentHealth:
    connected = engine.venue.connected
    return ComponentHealth(
        ok=connected, status="connected" if connected else "disconnected", detail=engine.venue.name
    )


def database_health(history: "HistoryService | None") -> ComponentHealth:
    """Never unready: the engine trades without its store and the projector catches up."""
    if history is None:
        return ComponentHealth(ok=True, status="not_configured", detail="VELOZ_DATABASE_URL=none")
    stats = history.stats
    lag = history.lag()
    if not stats.connected:
        detail = f"{history.name} unavailable ({stats.last_error}); {lag} entries behind"
        return ComponentHealth(ok=True, status="degraded", detail=detail)
    return ComponentHealth(
        ok=True, status="ok", detail=f"{history.name}; {lag} journal entries behind"
    )
