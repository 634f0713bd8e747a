"""Prometheus metrics. Every `veloz_*` name is defined here.

The engine's state is read when Prometheus scrapes (a custom collector), so the order path
pays nothing for metrics: the journal keeps plain counters (`JournalStats`), the OMS its
status indexes, the portfolio its books. This release exports the journal, orders, trading
mode, positions and equity, risk (VaR, drawdown, leverage, concentration, breaker),
event-loop and build figures; the rest of `operations.md`'s catalogue (latency histograms,
HTTP, streams) arrives with the observability release.
"""

import asyncio
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

from prometheus_client import ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector, CollectorRegistry

from veloz import __version__
from veloz.binance.limits import RateLimiter
from veloz.binance.stats import RestStats
from veloz.clock import Clock
from veloz.engine.core import TradingCore
from veloz.engine.stats import EngineStats
from veloz.execution.reconcile import Reconciliation
from veloz.execution.venues.binance_stats import VenueStats
from veloz.histogram import Histogram
from veloz.journal.stats import JournalStats
from veloz.market.binance_rest import MarketStats
from veloz.market.engine import MarketDataEngine
from veloz.model.enums import StrategyState, TradingMode
from veloz.observability.loop import LoopLagMonitor
from veloz.observability.memory import MemoryPool, MemoryPoolCollector
from veloz.oms.manager import OrderManager
from veloz.portfolio.portfolio import Portfolio
from veloz.risk.breaker import CircuitBreaker
from veloz.risk.engine import RiskEngine
from veloz.risk.portfolio_risk import exposures
from veloz.strategy.host import StrategyHost

if TYPE_CHECKING:
    from veloz.persistence.redis_events import RedisPublisher, RemotePublisher
    from veloz.persistence.service import HistoryService

Metric = CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily


class EngineFigures(Protocol):
    """What the engine collector reads when Prometheus scrapes: the live engine's
    components (`veloz.runtime.live.LiveEngine` has them all), named here so that this
    module does not depend on the runtime that wires them."""

    @property
    def clock(self) -> Clock: ...
    @property
    def journal_stats(self) -> JournalStats: ...
    @property
    def stats(self) -> EngineStats: ...
    @property
    def oms(self) -> OrderManager: ...
    @property
    def portfolio(self) -> Portfolio: ...
    @property
    def risk(self) -> RiskEngine: ...
    @property
    def breaker(self) -> CircuitBreaker: ...
    @property
    def mode(self) -> TradingMode: ...
    @property
    def market(self) -> MarketDataEngine: ...
    @property
    def market_source_name(self) -> str: ...
    @property
    def loop_lag(self) -> LoopLagMonitor: ...
    @property
    def strategies(self) -> StrategyHost: ...
    @property
    def core(self) -> TradingCore: ...
    @property
    def reconciliation(self) -> Reconciliation: ...
    @property
    def exchange(self) -> "ExchangeLink | None": ...
    @property
    def memory(self) -> MemoryPool: ...


class ExchangeLink(Protocol):
    """A real venue's connection, as the runtime wires it (`veloz.runtime.binance`)."""

    @property
    def limiter(self) -> RateLimiter: ...
    def rest_stats(self) -> list[RestStats]: ...
    def feed_stats(self) -> MarketStats | None: ...
    def venue_stats(self) -> VenueStats | None: ...


class EngineCollector(Collector):
    def __init__(self, engine: EngineFigures) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        yield from self._journal()
        yield from self._orders()
        yield from self._portfolio()
        yield from self._risk()
        yield from self._latency()
        yield from self._process()
        yield from self._strategies()

    def _strategies(self) -> Iterator[Metric]:
        """Per strategy: its state, its own position and realised PnL, and what it did."""
        state = GaugeMetricFamily(
            "veloz_strategy_state",
            "1 for the state each strategy is in",
            labels=["strategy", "state"],
        )
        position = GaugeMetricFamily(
            "veloz_strategy_position", "A strategy's own net position", labels=["strategy"]
        )
        pnl = GaugeMetricFamily(
            "veloz_strategy_realized_pnl",
            "A strategy's realised PnL, net of fees",
            labels=["strategy"],
        )
        orders = CounterMetricFamily(
            "veloz_strategy_orders", "Orders a strategy placed", labels=["strategy"]
        )
        denied = CounterMetricFamily(
            "veloz_strategy_orders_denied", "A strategy's orders refused", labels=["strategy"]
        )
        fills = CounterMetricFamily(
            "veloz_strategy_fills", "A strategy's fills", labels=["strategy"]
        )
        errors = CounterMetricFamily(
            "veloz_strategy_errors",
            "Callbacks that raised (the strategy stopped)",
            labels=["strategy"],
        )
        for running in self._engine.strategies.all():
            sid = running.strategy_id
            for candidate in StrategyState:
                state.add_metric([sid, candidate.value], 1 if running.state is candidate else 0)
            own = self._engine.core.strategy_position(sid)
            position.add_metric([sid], float(own.qty) if own is not None else 0.0)
            pnl.add_metric([sid], float(own.realized_pnl) if own is not None else 0.0)
            orders.add_metric([sid], running.counts.orders)
            denied.add_metric([sid], running.counts.denied)
            fills.add_metric([sid], running.counts.fills)
            errors.add_metric([sid], running.counts.errors)
        yield from (state, position, pnl, orders, denied, fills, errors)

    def _risk(self) -> Iterator[Metric]:
        engine = self._engine
        positions = engine.portfolio.positions()
        figures = exposures([p.notional for p in positions], engine.portfolio.equity())
        for name, value, help_text in (
            ("var_95", engine.risk.value_at_risk(0.95), "Historical VaR 95 of one sample"),
            ("var_99", engine.risk.value_at_risk(0.99), "Historical VaR 99 of one sample"),
            ("drawdown_ratio", float(engine.portfolio.drawdown()), "Drawdown from the peak"),
            ("leverage_gross", float(figures.gross_leverage), "Gross notional over equity"),
            ("leverage_net", float(figures.net_leverage), "Net notional over equity"),
            ("concentration_hhi", float(figures.hhi), "Herfindahl index of positions"),
            (
                "largest_position_share",
                float(figures.largest_share),
                "Largest position's share of gross exposure",
            ),
            (
                "circuit_breaker_tripped",
                1.0 if engine.breaker.tripped else 0.0,
                "1 while the circuit breaker halts trading",
            ),
        ):
            yield GaugeMetricFamily(f"veloz_risk_{name}", help_text, value=value)
        yield CounterMetricFamily(
            "veloz_risk_circuit_breaker_trips", "Circuit breaker trips", value=engine.breaker.trips
        )

    def _journal(self) -> Iterator[Metric]:
        stats = self._engine.journal_stats
        for name, value, help_text in (
            ("entries_written", stats.entries_written, "Journal entries written"),
            ("bytes_written", stats.bytes_written, "Journal bytes written"),
            ("rotations", stats.rotations, "Journal segment rotations"),
            ("corrupted_entries", stats.corrupted_entries, "Damaged journal entries found"),
            ("checkpoints", stats.checkpoints, "Journal checkpoints written"),
            ("replayed_entries", stats.replayed_entries, "Entries replayed at start"),
        ):
            yield CounterMetricFamily(f"veloz_wal_{name}", help_text, value=value)
        yield GaugeMetricFamily(
            "veloz_wal_replay_seconds",
            "Time the last start spent replaying the journal",
            value=stats.replay_seconds,
        )
        yield histogram_family(
            "veloz_wal_fsync_seconds", "Journal fdatasync duration", stats.fsync_seconds
        )
        yield histogram_family(
            "veloz_wal_batch_size", "Entries per journal write", stats.batch_size
        )

    def _orders(self) -> Iterator[Metric]:
        engine = self._engine
        by_status = GaugeMetricFamily(
            "veloz_orders_by_status", "Orders held, by status", labels=["status"]
        )
        for status, count in engine.oms.counts().items():
            by_status.add_metric([status.value], count)
        yield by_status
        yield GaugeMetricFamily("veloz_active_orders", "Open orders", value=engine.oms.open_count())
        rejections = CounterMetricFamily(
            "veloz_order_rejections", "Orders refused by the engine, by reason", labels=["reason"]
        )
        for reason, count in sorted(engine.stats.rejections.items()):
            rejections.add_metric([reason], count)
        yield rejections
        taken = CounterMetricFamily(
            "veloz_orders", "Orders taken into the book", labels=["side", "type"]
        )
        for (side, order_type), count in sorted(engine.stats.orders_taken.items()):
            taken.add_metric([side.value, order_type.value], count)
        yield taken
        fills = CounterMetricFamily("veloz_fills", "Fills", labels=["side"])
        for side, count in sorted(engine.stats.fills_by_side.items()):
            fills.add_metric([side.value], count)
        yield fills
        mode = GaugeMetricFamily("veloz_trading_mode", "1 for the mode in force", labels=["mode"])
        for candidate in TradingMode:
            mode.add_metric([candidate.value], 1 if engine.mode is candidate else 0)
        yield mode

    def _portfolio(self) -> Iterator[Metric]:
        portfolio = self._engine.portfolio
        yield GaugeMetricFamily(
            "veloz_equity", "Equity in the valuation asset", value=float(portfolio.equity())
        )
        yield GaugeMetricFamily(
            "veloz_drawdown_ratio",
            "Equity drawdown from its peak",
            value=float(portfolio.drawdown()),
        )
        qty = GaugeMetricFamily("veloz_position_qty", "Position quantity", labels=["symbol"])
        notional = GaugeMetricFamily(
            "veloz_position_notional", "Position notional at mark", labels=["symbol"]
        )
        unrealized = GaugeMetricFamily(
            "veloz_position_unrealized_pnl", "Unrealised PnL at mark", labels=["symbol"]
        )
        realized = GaugeMetricFamily(
            "veloz_position_realized_pnl", "Realised PnL net of fees", labels=["symbol"]
        )
        for position in portfolio.positions():
            qty.add_metric([position.symbol], float(position.qty))
            notional.add_metric([position.symbol], float(position.notional))
            unrealized.add_metric([position.symbol], float(position.unrealized_pnl))
            realized.add_metric([position.symbol], float(position.realized_pnl))
        yield from (qty, notional, unrealized, realized)

    def _latency(self) -> Iterator[Metric]:
        engine = self._engine
        yield histogram_family(
            "veloz_order_latency_seconds",
            "Order submit to durable acknowledgement",
            engine.stats.order_latency,
        )
        stages = HistogramMetricFamily(
            "veloz_latency_seconds", "Latency by stage", labels=["stage"]
        )
        for stage, histogram in (
            ("risk", engine.stats.risk_latency),
            ("venue", engine.stats.venue_latency),
            ("journal", engine.journal_stats.fsync_seconds),
        ):
            buckets, total = prometheus_buckets(histogram)
            stages.add_metric([stage], buckets, total)
        yield stages

    def _process(self) -> Iterator[Metric]:
        engine = self._engine
        yield GaugeMetricFamily(
            "veloz_event_loop_lag_seconds",
            "How late the loop's timers fire",
            value=engine.loop_lag.current_lag_s(),
        )
        yield GaugeMetricFamily(
            "veloz_event_loop_pending_tasks",
            "Tasks alive on the engine's event loop",
            value=_pending_tasks(),
        )
        now = engine.clock.time_ns()
        age = GaugeMetricFamily(
            "veloz_market_data_age_seconds", "Age of the latest quote", labels=["symbol"]
        )
        for symbol in engine.market.symbols():
            quote_age = engine.market.age_ns(symbol, now)
            if quote_age is not None:
                age.add_metric([symbol], quote_age / 1e9)
        yield age
        connected = GaugeMetricFamily(
            "veloz_websocket_connected",
            "1 while the market data feed is connected (the sim source: while it runs)",
            labels=["source"],
        )
        exchange = engine.exchange
        feed = exchange.feed_stats() if exchange is not None else None
        up = feed.connected if feed is not None else engine.market.running
        connected.add_metric([engine.market_source_name], 1 if up else 0)
        yield connected
        found = engine.reconciliation
        yield GaugeMetricFamily(
            "veloz_reconcile_orphan_orders",
            "Orders open at the venue that the journal does not know, at the last reconciliation",
            value=len(found.orphans),
        )
        yield CounterMetricFamily(
            "veloz_reconcile_runs", "Reconciliations with the venue", value=found.runs
        )
        yield CounterMetricFamily(
            "veloz_reconcile_missed_reports",
            "Venue reports reconciliation found the engine had missed",
            value=found.missed_reports,
        )
        yield CounterMetricFamily(
            "veloz_trades_closed", "Fills that closed position", value=engine.stats.trades_closed
        )
        yield CounterMetricFamily(
            "veloz_trades_won", "Closing fills with a profit", value=engine.stats.trades_won
        )
        rate = (
            engine.stats.trades_won / engine.stats.trades_closed
            if engine.stats.trades_closed
            else 1.0
        )
        yield GaugeMetricFamily(
            "veloz_win_rate", "Share of closing fills with a profit", value=rate
        )
        info = GaugeMetricFamily("veloz_build_info", "VeloZ version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info


def _pending_tasks() -> int:
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:  # scraped outside the loop (tests, tools)
        return 0


def prometheus_buckets(histogram: Histogram) -> tuple[list[tuple[str, float]], float]:
    """Cumulative Prometheus buckets of a plain histogram, and its sum."""
    cumulative, buckets = 0.0, []
    for bound, count in zip((*histogram.bounds, float("inf")), histogram.counts, strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
    return buckets, histogram.total


def histogram_family(name: str, help_text: str, histogram: Histogram) -> HistogramMetricFamily:
    buckets, total = prometheus_buckets(histogram)
    return HistogramMetricFamily(name, help_text, buckets=buckets, sum_value=total)


class StreamCollector(Collector):
    """Stream clients, read from whatever serves the streams (the API's hub)."""

    def __init__(self, counts: Callable[[], tuple[int, int, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        sse, ws, slow = self._counts()
        yield GaugeMetricFamily("veloz_sse_clients", "Open SSE streams", value=sse)
        yield GaugeMetricFamily("veloz_ws_clients", "Open WebSocket connections", value=ws)
        yield CounterMetricFamily(
            "veloz_stream_slow_clients_dropped",
            "Stream clients cut off for falling behind",
            value=slow,
        )


class ExchangeCollector(Collector):
    """A real venue's connection: requests, errors and latency by endpoint, what is left of
    each rate-limit budget, and whether the exchange has banned us."""

    def __init__(self, source: str, link: ExchangeLink | None) -> None:
        """`link` None: simulated market and venue, which never limit nor ban (the series
        exist so that dashboards and alerts work the same)."""
        self._source = source
        self._link = link
        self._limiter = link.limiter if link is not None else None
        self._rest: Callable[[], list[RestStats]] = link.rest_stats if link is not None else list

    def collect(self) -> Iterator[Metric]:
        yield from self._feed()
        yield from self._venue()
        yield from self._requests()

    def _feed(self) -> Iterator[Metric]:
        feed = self._link.feed_stats() if self._link is not None else None
        source = [self._source]
        for name, help_text, value in (
            (
                "veloz_websocket_reconnects",
                "Market data connections made again after a drop",
                feed.reconnects if feed else 0,
            ),
            (
                "veloz_market_gap_fills",
                "Reconnects after which missed bars and trades were fetched over REST",
                feed.gap_fills if feed else 0,
            ),
            (
                "veloz_market_book_resyncs",
                "Order books rebuilt from a snapshot after a gap in the depth updates",
                feed.book_resyncs if feed else 0,
            ),
            (
                "veloz_market_malformed_messages",
                "Market data messages that could not be read (counted, skipped)",
                feed.malformed if feed else 0,
            ),
        ):
            family = CounterMetricFamily(name, help_text, labels=["source"])
            family.add_metric(source, value)
            yield family
        stale = GaugeMetricFamily(
            "veloz_market_stale_streams",
            "Market streams silent past their limit",
            labels=["source"],
        )
        stale.add_metric(source, len(feed.stale_streams) if feed else 0)
        yield stale

    def _venue(self) -> Iterator[Metric]:
        venue = self._link.venue_stats() if self._link is not None else None
        yield GaugeMetricFamily(
            "veloz_user_stream_connected",
            "1 while the venue's user data stream delivers (0 for a simulated venue)",
            value=1 if venue is not None and venue.user_stream_connected else 0,
        )
        yield GaugeMetricFamily(
            "veloz_venue_polling",
            "1 while open orders are polled because the user data stream is down",
            value=1 if venue is not None and venue.polling else 0,
        )
        yield CounterMetricFamily(
            "veloz_venue_unknown_outcomes",
            "Orders and cancels whose outcome the venue left unknown (timeout, 5xx, drop)",
            value=venue.unknown_outcomes if venue else 0,
        )
        yield CounterMetricFamily(
            "veloz_venue_resolved_by_query",
            "Unknown outcomes settled by querying the client order id",
            value=venue.resolved_by_query if venue else 0,
        )

    def _requests(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "veloz_exchange_requests", "REST calls to the exchange", labels=["endpoint"]
        )
        errors = CounterMetricFamily(
            "veloz_exchange_errors",
            "REST calls that failed, by the exchange's code (or timeout, connection, http_5xx)",
            labels=["endpoint", "code"],
        )
        latency = HistogramMetricFamily(
            "veloz_exchange_request_latency_seconds",
            "Round trip of REST calls to the exchange",
            labels=["endpoint"],
        )
        for stats in self._rest():
            for endpoint, count in sorted(stats.requests.items()):
                requests.add_metric([endpoint], count)
            for (endpoint, code), count in sorted(stats.errors.items()):
                errors.add_metric([endpoint, code], count)
            for endpoint, histogram in sorted(stats.latency.items()):
                buckets, total = prometheus_buckets(histogram)
                latency.add_metric([endpoint], buckets, total)
        yield from (requests, errors, latency)
        limiter = self._limiter
        headroom = GaugeMetricFamily(
            "veloz_exchange_rate_limit_headroom",
            "Share of each exchange rate-limit budget still unused in its window",
            labels=["limit"],
        )
        for name, room in (limiter.headroom() if limiter else {}).items():
            headroom.add_metric([name], room)
        yield headroom
        yield GaugeMetricFamily(
            "veloz_exchange_banned",
            "1 while the exchange refuses every call (HTTP 418) until the ban ends",
            value=1 if limiter is not None and limiter.banned else 0,
        )
        yield GaugeMetricFamily(
            "veloz_exchange_key_refused",
            "1 while the exchange refuses the API key (revoked, expired, IP not allowed)",
            value=1 if any(stats.key_refused for stats in self._rest()) else 0,
        )
        yield CounterMetricFamily(
            "veloz_exchange_rate_limit_waits",
            "Calls held back to stay inside the exchange's rate limits",
            value=limiter.waits if limiter else 0,
        )


class StoreCollector(Collector):
    """The history store: how far its projection is behind the journal, and whether the
    database answers."""

    def __init__(self, history: "HistoryService") -> None:
        self._history = history

    def collect(self) -> Iterator[Metric]:
        history, stats = self._history, self._history.stats
        yield GaugeMetricFamily(
            "veloz_store_lag_entries",
            "Journal entries not yet in the history store",
            value=history.lag(),
        )
        yield GaugeMetricFamily(
            "veloz_store_up", "1 while the history store answers", value=int(stats.connected)
        )
        yield GaugeMetricFamily(
            "veloz_store_projector_up",
            "1 while the history projector runs (in process, or reporting from its own)",
            value=int(history.projector_up()),
        )
        yield GaugeMetricFamily(
            "veloz_store_retention_floor_seq",
            "Oldest journal sequence retention keeps for the projector",
            value=history.next_needed_seq(),
        )
        yield GaugeMetricFamily(
            "veloz_store_high_water_seq",
            "Last journal sequence the history store holds",
            value=stats.high_water,
        )
        for name, value, help_text in (
            ("projected_entries", stats.projected_entries, "Journal entries projected"),
            ("batches", stats.batches, "Batches written to the history store"),
            ("failures", stats.failures, "Failed attempts to reach or write the store"),
            ("missing_entries", stats.missing_entries, "Journal entries gone before projection"),
            ("skipped_entries", stats.skipped_entries, "Journal entries the projection skipped"),
            ("audit_dropped", history.audit_dropped, "Audit records dropped from a full backlog"),
            ("snapshots_failed", history.snapshots_failed, "Portfolio samples not stored"),
        ):
            yield CounterMetricFamily(f"veloz_store_{name}", help_text, value=value)


class RedisCollector(Collector):
    """The Redis Streams publisher: whether Redis answers and how far the stream is behind
    the journal."""

    def __init__(self, redis: "RedisPublisher | RemotePublisher") -> None:
        self._redis = redis

    def collect(self) -> Iterator[Metric]:
        redis, stats = self._redis, self._redis.stats
        yield GaugeMetricFamily(
            "veloz_redis_connected", "1 while Redis takes the events", value=int(stats.connected)
        )
        yield GaugeMetricFamily(
            "veloz_redis_lag_entries",
            "Durable journal entries not yet in the Redis stream",
            value=redis.lag(),
        )
        yield GaugeMetricFamily(
            "veloz_redis_published_seq",
            "Last journal sequence the Redis stream is known to hold",
            value=stats.published_seq,
        )
        for name, value, help_text in (
            ("published_events", stats.published_entries, "Journal entries added to the stream"),
            ("republishes", stats.republishes, "Times the stream had lost entries (rewritten)"),
            ("missing_entries", stats.missing_entries, "Journal entries gone before publishing"),
            ("failures", stats.failures, "Failed attempts to reach or write Redis"),
        ):
            yield CounterMetricFamily(f"veloz_redis_{name}", help_text, value=value)
        yield histogram_family(
            "veloz_redis_publish_batch_seconds",
            "Time to add one pipelined batch of entries to the stream",
            stats.batch_seconds,
        )


class AccessCollector(Collector):
    """Requests the API's access control refused, by answer code."""

    def __init__(self, refused: Callable[[], dict[str, int]]) -> None:
        self._refused = refused

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "veloz_api_refused",
            "Requests refused before their route: unauthorized, forbidden, rate limited",
            labels=["code"],
        )
        for code, count in sorted(self._refused().items()):
            family.add_metric([code], count)
        yield family


def registry_for(
    engine: EngineFigures,
    history: "HistoryService | None" = None,
    redis: "RedisPublisher | RemotePublisher | None" = None,
) -> CollectorRegistry:
    """One registry per engine (no process-global state), so two engines can share a
    process in tests and sweeps."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(engine))
    registry.register(ExchangeCollector(engine.market_source_name, engine.exchange))
    registry.register(MemoryPoolCollector(engine.memory))
    if history is not None:
        registry.register(StoreCollector(history))
    if redis is not None:
        registry.register(RedisCollector(redis))
    # Memory, CPU and file descriptors of this process, as veloz_process_*.
    ProcessCollector(namespace="veloz", registry=registry)
    return registry
