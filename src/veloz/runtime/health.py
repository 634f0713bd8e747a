"""The health checks behind `/health/*`: each component's state read from the live
engine, and whether it is started, live and ready to trade."""

import time
from typing import TYPE_CHECKING

from veloz import __version__
from veloz.auth.service import AuthService
from veloz.engine.views.health import ComponentHealth, Health, Probe, Readiness
from veloz.market.engine import FeedStatus
from veloz.model.enums import EnginePhase, TradingMode
from veloz.persistence.service import HistoryService
from veloz.runtime.live import LiveEngine

if TYPE_CHECKING:  # redis-py is imported only by engines that publish to Redis
    from veloz.persistence.redis_events import RedisPublisher, RemotePublisher

LIVE_LAG_LIMIT_S = 1.0


def health(engine: LiveEngine) -> Health:
    return Health(
        ok=True,
        status="ok",
        version=__version__,
        uptime_s=round(time.time() - engine.started_ns / 1e9, 3),
        phase=EnginePhase(engine.phase),
        mode=engine.mode,
    )


def liveness(engine: LiveEngine) -> Probe:
    lag = engine.loop_lag.current_lag_s()
    ok = lag < LIVE_LAG_LIMIT_S
    return Probe(ok=ok, status="ok" if ok else "stalled", detail=f"loop lag {lag:.3f} s")


def startup(engine: LiveEngine) -> Probe:
    return Probe(ok=engine.ready, status=engine.phase)


def readiness(
    engine: LiveEngine,
    symbol: str,
    history: HistoryService | None,
    auth: AuthService | None = None,
) -> Readiness:
    """Ready to trade: started, journal writable, market data fresh, venue connected, the
    configured credentials in force (auth on), not in maintenance. READONLY is ready
    (reads and cancels work); the mode is reported."""
    components = {
        "journal": journal_health(engine),
        "market": market_health(engine, symbol),
        "venue": venue_health(engine),
        "database": database_health(history),
        "auth": auth_health(auth),
        "cache": cache_health(engine.redis),
    }
    ok = (
        engine.ready
        and all(c.ok for c in components.values())
        and engine.mode is not TradingMode.MAINTENANCE
    )
    return Readiness(
        ok=ok,
        phase=EnginePhase(engine.phase),
        mode=engine.mode,
        mode_reason=engine.mode_reason,
        components=components,
        trading=trading_kind(engine.config.market_source, engine.config.execution_mode),
        market_source=engine.config.market_source,
        execution_mode=engine.config.execution_mode,
    )


def trading_kind(market_source: str, execution_mode: str) -> str:
    """What trades where: "live" (Binance spot: real money), "testnet", "paper" (Binance's
    prices, the simulated venue) or "sim"."""
    if execution_mode == "binance_spot":
        return "live"
    if execution_mode == "binance_testnet_spot":
        return "testnet"
    return "sim" if market_source == "sim" else "paper"


def journal_health(engine: LiveEngine) -> ComponentHealth:
    journal = engine.journal
    if journal is None:
        return ComponentHealth(ok=False, status="unavailable", detail=engine.journal_error or "")
    if journal.failure is not None:
        return ComponentHealth(ok=False, status="failed", detail=journal.failure)
    problems = engine.journal_problems
    if problems:
        detail = f"{len(problems)} problems found at start: {problems[0]}"
        return ComponentHealth(ok=True, status="damaged", detail=detail)
    return ComponentHealth(ok=True, status="ok", detail=f"next sequence {journal.next_seq}")


def market_health(engine: LiveEngine, symbol: str) -> ComponentHealth:
    now = engine.clock.time_ns()
    status = engine.market.status(symbol, now)
    age = engine.market.age_ns(symbol, now)
    detail = (
        f"{symbol} quote {age // 1_000_000} ms old" if age is not None else f"{symbol}: no quote"
    )
    exchange = engine.exchange
    feed = exchange.feed_stats() if exchange is not None else None
    if feed is not None:
        if not feed.connected:
            # The last quote may still be young, but nothing new can arrive.
            status = FeedStatus.DISCONNECTED
            detail += f"; {engine.market_source_name} reconnecting ({feed.reconnects} so far)"
        elif feed.stale_streams:
            detail += f"; silent streams: {', '.join(sorted(feed.stale_streams))}"
    if exchange is not None and exchange.limiter.banned:
        detail += "; Binance has banned this IP (418)"
    return ComponentHealth(ok=status is FeedStatus.OK, status=status, detail=detail)


def venue_health(engine: LiveEngine) -> ComponentHealth:
    connected = engine.venue.connected
    name = engine.venue.name
    exchange = engine.exchange
    if exchange is not None and exchange.limiter.banned:
        until = exchange.limiter.banned_until or 0.0
        left = max(0.0, until - exchange.limiter.now())  # the limiter's own clock
        detail = f"{name}: banned by Binance (HTTP 418) for another {left:.0f} s"
        return ComponentHealth(ok=False, status="banned", detail=detail)
    refused = [stats.key_refused for stats in exchange.rest_stats()] if exchange else []
    if any(refused):
        detail = f"{name}: Binance refuses the API key: {next(r for r in refused if r)}"
        return ComponentHealth(ok=False, status="unauthorized", detail=detail)
    venue = exchange.venue_stats() if exchange is not None else None
    if connected and venue is not None and not venue.user_stream_connected:
        # Orders still go out and their state is polled, so trading goes on, slower.
        detail = f"{name}: user data stream down, polling open orders"
        return ComponentHealth(ok=True, status="polling", detail=detail)
    return ComponentHealth(
        ok=connected, status="connected" if connected else "disconnected", detail=name
    )


def database_health(history: HistoryService | None) -> ComponentHealth:
    """Never unready: the engine trades without its store and the projector catches up."""
    if history is None:
        return ComponentHealth(ok=True, status="not_configured", detail="VELOZ_DATABASE_URL=none")
    stats = history.stats
    lag = history.lag()
    if not history.projector_up():
        # Retention keeps the journal from its next entry on until it is back.
        detail = (
            f"{history.name}: projector not running; {lag} entries behind, journal "
            f"retention waits at entry {history.next_needed_seq()}"
        )
        return ComponentHealth(ok=True, status="degraded", detail=detail)
    if not stats.connected:
        detail = f"{history.name} unavailable ({stats.last_error}); {lag} entries behind"
        return ComponentHealth(ok=True, status="degraded", detail=detail)
    return ComponentHealth(
        ok=True, status="ok", detail=f"{history.name}; {lag} journal entries behind"
    )


def cache_health(redis: "RedisPublisher | RemotePublisher | None") -> ComponentHealth:
    """Redis Streams, for the gateways. Never unready: the engine trades and journals
    without Redis, and the publisher catches up from the journal when it is back."""
    if redis is None:
        detail = "VELOZ_REDIS_URL and VELOZ_REDIS_SENTINELS unset"
        return ComponentHealth(ok=True, status="not_configured", detail=detail)
    stats = redis.stats
    lag = redis.lag()
    if not stats.connected:
        detail = f"redis {redis.name} unavailable ({stats.last_error or 'connecting'}); "
        return ComponentHealth(ok=True, status="degraded", detail=f"{detail}{lag} entries behind")
    return ComponentHealth(
        ok=True,
        status="ok",
        detail=f"redis {redis.name}, stream {redis.config.stream}; {lag} journal entries behind",
    )


def auth_health(auth: AuthService | None) -> ComponentHealth:
    """Whether a client can authenticate: with auth on, only once the bootstrap admin is
    written and users and keys are loaded."""
    if auth is None or not auth.enabled:
        return ComponentHealth(ok=True, status="disabled", detail="VELOZ_AUTH_ENABLED=false")
    if not auth.ready:
        return ComponentHealth(ok=False, status="loading", detail=auth.load_error)
    return ComponentHealth(ok=True, status="ok", detail="users and keys loaded")
