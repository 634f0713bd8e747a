"""Service mode: the engine with its HTTP API, uvicorn serving inside the engine's loop.

The server comes up first so `/health` answers while the journal replays; SIGINT/SIGTERM
stop the server from taking requests, then the engine drains and checkpoints.
"""

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Iterator

import uvicorn

from veloz.api.app import create_app
from veloz.auth.service import AuthService
from veloz.config import Settings
from veloz.engine.client import EngineClient
from veloz.persistence.service import HistoryService, running_history
from veloz.runtime.live import LiveEngine

logger = logging.getLogger(__name__)


class _EmbeddedServer(uvicorn.Server):
    """uvicorn re-raises captured signals after serving, which would kill the process
    before the engine drains; the engine installs its own handlers instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run_service(
    engine: LiveEngine,
    settings: Settings,
    host: str,
    port: int,
    history: HistoryService | None = None,
) -> int:
    shutdown = asyncio.Event()
    auth = AuthService(settings.auth_config(), history.store if history else None, time.time_ns)
    app = create_app(
        EngineClient(engine, history),
        settings,
        shutdown=shutdown,
        max_body_bytes=settings.max_body_bytes,
        http_metrics=settings.metrics,
        auth=auth,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    server = _EmbeddedServer(config)
    loop = asyncio.get_running_loop()

    def stop_serving() -> None:
        shutdown.set()  # open streams end, so the server can close their connections
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_serving)
    serving = loop.create_task(server.serve(), name="veloz-http")
    # uvicorn offers no "started" event to await, only the flag.
    while not server.started and not serving.done():  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    if serving.done():
        serving.result()  # surfaces a bind error
        return 1
    logger.info("serving HTTP on %s:%d", host, port)
    async with running_history(history):
        await auth.start()
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
            await auth.stop()
    return 0
