"""`veloz gateway`: the API app on a `GatewayClient`, served by uvicorn, with the tasks
that keep it fed (the stream, the engine's feed, the open orders' snapshot) and the
stores its access control needs (users and keys, the audit trail, shared rate limits).
"""

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from typing import cast

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import Receive, Scope, Send
from prometheus_client import ProcessCollector
from prometheus_client.registry import CollectorRegistry

from veloz.api.app import create_app
from veloz.api.headers import request_headers
from veloz.auth.service import AuthService, gateway_token
from veloz.codec import encode_json
from veloz.config import Settings
from veloz.model.errors import CommandRejected
from veloz.persistence.projector import sleep_unless_stopped
from veloz.persistence.redis_events import RedisConfig, connect
from veloz.persistence.service import open_store
from veloz.persistence.store import Store, StoreUnavailable
from veloz.runtime.credential_changes import CredentialChanges
from veloz.runtime.gateway.audit import GatewayAudit
from veloz.runtime.gateway.client import GatewayClient, GatewayConfig
from veloz.runtime.gateway.limits import RedisRateLimit
from veloz.runtime.gateway.link import CALLER, Caller, EngineLink
from veloz.runtime.gateway.metrics import GatewayCollector
from veloz.runtime.service import embedded_server

logger = logging.getLogger(__name__)

RETRY_MAX_S = 10.0


async def _until(stop: asyncio.Event, waiting: Awaitable[object]) -> None:
    """Await `waiting` unless `stop` is set first."""
    task = asyncio.ensure_future(waiting)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait((task, stopping), return_when=asyncio.FIRST_COMPLETED)
    for pending in (task, stopping):
        pending.cancel()


# Routes whose state only the engine holds (research jobs and their files): passed to it
# whole, so a job started through one replica is found through any other. The engine
# checks, counts and audits these itself.
RELAYED_PREFIXES = ("/api/backtests", "/api/optimizations")
_HOP_BY_HOP = frozenset({"host", "connection", "content-length", "transfer-encoding", "keep-alive"})
_ANSWER_HEADERS = frozenset(
    {
        "content-type",
        "content-disposition",
        "cache-control",
        "retry-after",
        "www-authenticate",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-request-id",
    }
)


def gateway_asgi(
    app: Litestar, link: EngineLink, max_body_bytes: int
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The app, with each request's credential headers and address chain kept for the
    commands it forwards (`link.CALLER`), and the research routes relayed to the engine."""

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        headers = request_headers(scope)
        client = scope.get("client")
        chain = [h for h in (headers.get("x-forwarded-for", ""),) if h]
        chain.append(client[0] if client else "unknown")
        caller = Caller(headers=headers, forwarded_for=", ".join(chain))
        if scope["type"] == ScopeType.HTTP and str(scope["path"]).startswith(RELAYED_PREFIXES):
            await _relay(scope, receive, send, link, caller=caller, limit=max_body_bytes)
            return
        token = CALLER.set(caller)
        try:
            await app(scope, receive, send)
        finally:
            CALLER.reset(token)

    return serve


async def _relay(
    scope: Scope, receive: Receive, send: Send, link: EngineLink, *, caller: Caller, limit: int
) -> None:
    body = bytearray()
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += cast(bytes, message.get("body", b""))
        more = bool(message.get("more_body", False))
        if len(body) > limit:
            await _answer(send, 413, {"error": "body_too_large", "message": f"over {limit} bytes"})
            return
    headers = {k: v for k, v in caller.headers.items() if k not in _HOP_BY_HOP}
    headers["x-forwarded-for"] = caller.forwarded_for
    query = scope.get("query_string", b"").decode("latin-1")
    target = str(scope["path"]) + (f"?{query}" if query else "")
    try:
        method = str(scope.get("method", "GET"))
        answer = await link.relay(method, target, headers, bytes(body))
    except CommandRejected as exc:
        await _answer(send, 503, {"error": exc.code.value, "message": exc.message})
        return
    kept = [
        (k.encode("latin-1"), v.encode("latin-1"))
        for k, v in answer.headers.items()
        if k.lower() in _ANSWER_HEADERS
    ]
    await send({"type": "http.response.start", "status": answer.status_code, "headers": kept})
    await send({"type": "http.response.body", "body": answer.content, "more_body": False})


async def _answer(send: Send, status: int, error: dict[str, str]) -> None:
    body = encode_json(error)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _connect_store(store: Store, stop: asyncio.Event) -> None:
    """Connect, retrying: the engine creates and migrates the schema, a gateway only uses
    it."""
    delay = 0.5
    while not stop.is_set():
        try:
            await store.connect()
        except StoreUnavailable as exc:
            logger.warning("gateway: history store unavailable, retrying: %s", exc)
            await store.close()
            await sleep_unless_stopped(stop, delay)
            delay = min(delay * 2, RETRY_MAX_S)
            continue
        return


async def _snapshots(client: GatewayClient, stop: asyncio.Event) -> None:
    """The engine's open orders, once the stream's backlog is read, and again after each
    gap in the stream; retried until the engine answers."""
    await _until(stop, client.follower.ready.wait())
    delay = 0.5
    while not stop.is_set():
        try:
            await client.take_snapshot()
        except CommandRejected as exc:
            logger.warning("gateway: no snapshot from the engine yet, retrying: %s", exc)
            await sleep_unless_stopped(stop, delay)
            delay = min(delay * 2, RETRY_MAX_S)
            continue
        delay = 0.5
        logger.info("gateway: snapshot of the engine's open orders taken")
        await _until(stop, client.snapshot_wanted.wait())


def gateway_parts(settings: Settings, redis: RedisConfig) -> tuple[GatewayClient, RedisRateLimit]:
    assert settings.engine_url is not None
    link = EngineLink(
        settings.engine_url,
        token=gateway_token(settings.auth_config()),
        api_key=settings.engine_api_key,
    )
    client = GatewayClient(GatewayConfig(), link, redis)
    limit = RedisRateLimit(connect(redis), redis.stream, settings.api_rate_limit)
    return client, limit


async def run_gateway(settings: Settings, redis: RedisConfig, host: str, port: int) -> int:
    name = settings.gateway_name or socket.gethostname()
    client, limit = gateway_parts(settings, redis)
    stop = asyncio.Event()
    # Only a store named on purpose: the default SQLite file is the engine's own when
    # they share a directory, and nothing at all when they do not.
    history = settings.history_config() if "database_url" in settings.model_fields_set else None
    store = open_store(history.url) if history is not None else None
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per forwarded request
    auth = AuthService(settings.auth_config(), store, time.time_ns)
    # A key revoked or a user disabled through any replica stops working on all at once.
    changes = CredentialChanges(redis, auth) if auth.enabled else None
    # Each audit record into the gateway's own spool, imported into the store from there.
    audit = (
        GatewayAudit(settings.gateway_audit_dir, store, RETRY_MAX_S) if store is not None else None
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(client, limit, audit, changes))
    ProcessCollector(namespace="veloz", registry=registry)
    app = create_app(
        client,
        settings,
        shutdown=stop,
        max_body_bytes=settings.max_body_bytes,
        http_metrics=settings.metrics,
        auth=auth,
        metrics=registry,
        record_audit=audit.record if audit is not None else None,
        shared_limit=limit,
        gateway=True,
    )
    server = embedded_server(gateway_asgi(app, client.link, settings.max_body_bytes), host, port)
    loop = asyncio.get_running_loop()

    def stop_serving() -> None:
        stop.set()
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_serving)
    if store is not None:
        await _connect_store(store, stop)
    await auth.start()
    tasks = [
        loop.create_task(client.follower.run(stop), name="veloz-gateway-stream"),
        loop.create_task(client.run_feed(stop), name="veloz-gateway-feed"),
        loop.create_task(_snapshots(client, stop), name="veloz-gateway-snapshot"),
    ]
    if changes is not None:
        tasks.append(loop.create_task(changes.run(stop), name="veloz-gateway-credentials"))
    if audit is not None:
        tasks.append(loop.create_task(audit.run(stop), name="veloz-gateway-audit"))
    logger.info(
        "gateway %s for the engine at %s, events from %s %s, serving on %s:%d",
        name,
        client.link.base_url,
        redis.name,
        redis.stream,
        host,
        port,
    )
    try:
        await server.serve()
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        if audit is not None:
            await audit.close()  # what the last requests left, if the store answers
        await auth.stop()
        if changes is not None:
            await changes.close()
        await client.follower.close()
        await client.link.close()
        if store is not None:
            with contextlib.suppress(StoreUnavailable):
                await store.close()
    return 0
