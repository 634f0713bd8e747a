"""Building the Litestar app around an EngineClient."""

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.static_files import create_static_files_router
from prometheus_client.registry import CollectorRegistry

from veloz import __version__
from veloz.api.access import AccessConfig, AccessControl, SharedLimit
from veloz.api.account import AccountController
from veloz.api.admin import AdminController
from veloz.api.audit import AuditController
from veloz.api.auth import AuthController
from veloz.api.config import ConfigController
from veloz.api.errors import domain_error, http_error
from veloz.api.feed import internal_feed
from veloz.api.health import HealthController
from veloz.api.http_metrics import HttpMetrics
from veloz.api.json import DecimalAsNumber, NumberJSONResponse
from veloz.api.market import InstrumentsController, MarketController
from veloz.api.metrics import MetricsController
from veloz.api.orders import OrdersController
from veloz.api.request_context import RequestContext
from veloz.api.research import BacktestsController, OptimizationsController
from veloz.api.risk import RiskController
from veloz.api.strategies import StrategiesController
from veloz.api.stream_hub import DEFAULT_FLUSH_INTERVAL_S, GATEWAY_FLUSH_INTERVAL_S
from veloz.api.streams import stream_routes
from veloz.auth.service import AuthConfig, AuthService
from veloz.config import Settings, split_list
from veloz.engine.client import EngineClient
from veloz.model.errors import VelozError
from veloz.observability.memory import MemoryPool
from veloz.observability.metrics import AccessCollector, StreamCollector
from veloz.persistence.store import AuditRecord
from veloz.research.jobs import JobsConfig, JobService

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
DEFAULT_MAX_BODY_BYTES = 64 * 1024


def _queued_bytes(app: Litestar) -> int:
    hub = app.state.get("stream_hub")
    return hub.queued_bytes if hub is not None else 0


def _stream_counts(app: Litestar) -> tuple[int, int, int]:
    hub = app.state.get("stream_hub")
    return (hub.sse_clients, hub.ws_clients, hub.slow_dropped) if hub is not None else (0, 0, 0)


def stream_flush_interval(settings: Settings, gateway: bool) -> float:
    """VELOZ_STREAM_FLUSH_MS, or the default of this kind of process: none on the engine,
    whose few clients get each event as the loop turns; some on a gateway, whose
    thousands of clients cost a socket write each per flush."""
    if settings.stream_flush_ms is not None:
        return settings.stream_flush_ms / 1000
    return GATEWAY_FLUSH_INTERVAL_S if gateway else DEFAULT_FLUSH_INTERVAL_S


def create_app(
    client: EngineClient,
    settings: Settings | None = None,
    *,
    shutdown: asyncio.Event | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    http_metrics: bool = True,
    auth: AuthService | None = None,
    metrics: CollectorRegistry | None = None,
    record_audit: Callable[[AuditRecord], None] | None = None,
    memory: MemoryPool | None = None,
    jobs: JobService | None = None,
    shared_limit: SharedLimit | None = None,
    gateway: bool = False,
) -> Litestar:
    """`shutdown` is set when the service stops, so open streams end instead of holding
    the server open. Without `auth` (or with it off) every caller may do everything: the
    dev preset, bound to loopback. `metrics` is the registry `/metrics` exposes (the
    runtime registers the engine's collectors in it; the app adds its own), and
    `record_audit` keeps the audit trail (it is logged in any case). `memory` (the
    engine's VELOZ_MEMORY_POOL_SIZE budget) bounds what the streams queue. `jobs` runs
    the backtests and optimisations submitted over HTTP (one from `settings` if not
    given; whoever stops the service closes it). `shared_limit` replaces the in-process
    per-credential limit with one shared by replicas (a gateway's, in Redis). `gateway`:
    the app of a gateway replica, which never takes a request as forwarded by another and
    gathers stream events before writing them (`stream_flush_interval`)."""
    settings = settings or Settings()
    research_jobs = jobs or JobService(JobsConfig.of(settings))
    auth = auth or AuthService(AuthConfig(enabled=False), None, time.time_ns)
    access = AccessControl(
        auth,
        AccessConfig(
            api_rate_limit=settings.api_rate_limit,
            api_ip_rate_limit=settings.api_ip_rate_limit,
            login_rate_limit=settings.login_rate_limit,
            trusted_proxies=split_list(settings.trusted_proxies),
        ),
        record_audit,
        shared_limit=shared_limit,
        honour_gateways=not gateway,
    )
    origins = split_list(settings.cors_origins)
    if metrics is None:
        metrics = CollectorRegistry(auto_describe=False)
    http = HttpMetrics()
    if http_metrics:
        metrics.register(http)
    app = Litestar(
        route_handlers=[
            HealthController,
            MarketController,
            InstrumentsController,
            OrdersController,
            AccountController,
            ConfigController,
            AdminController,
            MetricsController,
            RiskController,
            StrategiesController,
            AuthController,
            AuditController,
            BacktestsController,
            OptimizationsController,
            *stream_routes,
            internal_feed,
            create_static_files_router(path="/", directories=[UI_DIR], html_mode=True),
        ],
        dependencies={
            "engine_client": Provide(lambda: client, sync_to_thread=False),
            "settings": Provide(lambda: settings, sync_to_thread=False),
            "auth": Provide(lambda: auth, sync_to_thread=False),
            "research_jobs": Provide(lambda: research_jobs, sync_to_thread=False),
        },
        exception_handlers={VelozError: domain_error, HTTPException: http_error},
        openapi_config=OpenAPIConfig(title="VeloZ", version=__version__, path="/schema"),
        plugins=[DecimalAsNumber()],
        response_class=NumberJSONResponse,
        request_max_body_size=max_body_bytes,
        # Access control last: refused requests are still counted and carry a request id.
        middleware=[RequestContext(), *([http] if http_metrics else []), access],
        cors_config=CORSConfig(allow_origins=list(origins)) if origins else None,
        logging_config=None,  # logging is configured once, by the CLI, to stderr
    )
    app.state.shutdown = shutdown or asyncio.Event()
    app.state.stream_flush_s = stream_flush_interval(settings, gateway)
    # For the order route's fast lane (`order_entry`), which runs before dependencies are.
    app.state.engine_client = client
    app.state.metrics = metrics
    app.state.memory = memory
    app.state.research_jobs = research_jobs
    if memory is not None:
        memory.watch("streams", lambda: _queued_bytes(app))
    metrics.register(StreamCollector(lambda: _stream_counts(app)))
    metrics.register(AccessCollector(lambda: dict(access.refused)))
    return app
