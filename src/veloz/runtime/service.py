"""Service mode: the engine with its HTTP API, uvicorn serving inside the engine's loop.

The server comes up first so `/health` answers while the journal replays; SIGINT/SIGTERM
stop the server from taking requests, then the engine drains and checkpoints.
"""

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import uvicorn
from litestar import Litestar
from litestar.types import ASGIApp

from veloz.api.app import DEFAULT_MAX_BODY_BYTES, create_app
from veloz.auth.service import AuthService
from veloz.config import Settings
from veloz.observability.metrics import registry_for
from veloz.persistence.service import HistoryService, running_history
from veloz.research.jobs import JobsConfig, JobService
from veloz.runtime.client import LocalEngineClient
from veloz.runtime.live import LiveEngine, StartRefused
from veloz.runtime.redis_events import running_redis

if TYPE_CHECKING:  # redis-py is imported only by engines configured for Redis
    from veloz.runtime.credential_changes import CredentialChanges

logger = logging.getLogger(__name__)


class EmbeddedServer(uvicorn.Server):
    """uvicorn re-raises captured signals after serving, which would kill the process
    before the engine drains; the engine (or a gateway) installs its own handlers instead,
    which also end the open streams."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def embedded_server(app: ASGIApp, host: str, port: int) -> EmbeddedServer:
    """uvicorn for `app`, logging through ours, no access log, no lifespan."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    return EmbeddedServer(config)


def service_app(
    engine: LiveEngine,
    settings: Settings | None = None,
    history: HistoryService | None = None,
    *,
    auth: AuthService | None = None,
    shutdown: asyncio.Event | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    http_metrics: bool = True,
    jobs: JobService | None = None,
) -> Litestar:
    """The HTTP API on `engine`: the in-process client, the engine's metrics, and the
    audit trail into the history store (if there is one)."""
    return create_app(
        LocalEngineClient(engine, history, auth),
        settings,
        shutdown=shutdown,
        max_body_bytes=max_body_bytes,
        http_metrics=http_metrics,
        auth=auth,
        metrics=registry_for(engine, history, engine.redis),
        record_audit=history.record_audit if history is not None else None,
        memory=engine.memory,
        jobs=jobs,
    )


async def run_service(
    engine: LiveEngine,
    settings: Settings,
    host: str,
    port: int,
    history: HistoryService | None = None,
) -> int:
    shutdown = asyncio.Event()
    auth = AuthService(settings.auth_config(), history.store if history else None, time.time_ns)
    changes = _credential_changes(settings, auth)
    jobs = JobService(JobsConfig.of(settings))
    app = service_app(
        engine,
        settings,
        history,
        auth=auth,
        shutdown=shutdown,
        max_body_bytes=settings.max_body_bytes,
        http_metrics=settings.metrics,
        jobs=jobs,
    )
    server = embedded_server(app, host, port)
    loop = asyncio.get_running_loop()

    def stop_serving() -> None:
        shutdown.set()  # open streams end, so the server can close their connections
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_serving)
    try:
        listening = _listen(host, port, server.config.backlog)
    except OSError as exc:
        # Before uvicorn binds it, so the refusal is one line, not its exit(3) and trace.
        raise StartRefused(
            f"VELOZ_PORT {port} on VELOZ_HOST {host} cannot be used: {exc.strerror or exc}",
            permanent=False,
        ) from None
    serving = loop.create_task(server.serve(sockets=[listening]), name="veloz-http")
    # uvicorn offers no "started" event to await, only the flag.
    while not server.started and not serving.done():  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    if serving.done():
        serving.result()  # surfaces a bind error
        return 1
    logger.info("serving HTTP on %s:%d", host, port)
    async with running_history(history), running_redis(engine.redis):
        await auth.start()
        stop_listening = asyncio.Event()
        hearing = (
            [loop.create_task(changes.run(stop_listening), name="veloz-credentials")]
            if changes is not None
            else []
        )
        try:
            try:
                await engine.start()
            except BaseException:
                server.should_exit = True
                await serving
                raise
            await serving
            await engine.stop()
        finally:
            await asyncio.to_thread(jobs.close)  # the workers are stopped before the engine exits
            await auth.stop()
            stop_listening.set()
            await asyncio.gather(*hearing, return_exceptions=True)
            if changes is not None:
                await changes.close()
    return 0


def _credential_changes(settings: Settings, auth: AuthService) -> "CredentialChanges | None":
    """With auth on and gateways (Redis) configured: the engine hears credential changes
    made through the gateways, and they hear its own."""
    redis = settings.redis_config()
    if not auth.enabled or redis is None:
        return None
    from veloz.runtime.credential_changes import CredentialChanges  # noqa: PLC0415

    return CredentialChanges(redis, auth)


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=backlog)
