"""Admin routes: trading modes, log level, checkpoints. Each answers `{"ok", "mode", ...}`
and is audited by the access control (`veloz.api.access`) like every mutating request."""

import logging
from typing import Literal

import msgspec
from litestar import Controller, post

from veloz.api.body import AnyRequest, body_operation, object_schema, read_fields, string
from veloz.api.deps import Client
from veloz.api.errors import error_responses
from veloz.model.enums import TradingMode
from veloz.model.errors import CommandRejected
from veloz.observability.logs import LEVELS, set_level

logger = logging.getLogger(__name__)
LogLevel = Literal["debug", "info", "warn", "error"]
LOG_LEVEL_BODY = object_schema(
    ["level"], level=string("new log level", enum=["debug", "info", "warn", "error"])
)


class ModeAnswer(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    mode: TradingMode
    changed: bool


class LogLevelAnswer(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    mode: TradingMode
    level: str


class ReloadAnswer(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    mode: TradingMode
    source: str | None
    sha256: str | None
    loaded_at_ns: int


class CheckpointAnswer(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    mode: TradingMode
    seq: int


def _actor(request: AnyRequest) -> str:
    """Who asked, as the audit trail and the journal name them: `user:<id>`, `key:<id>`,
    or `anonymous:<address>` with authentication off."""
    principal = request.scope.get("state", {}).get("principal")
    if principal is not None:
        return str(principal.actor)
    return f"anonymous:{request.client.host if request.client else 'unknown'}"


async def _mode(engine_client: Client, request: AnyRequest, action: str) -> ModeAnswer:
    actor = _actor(request)
    mode, changed = await engine_client.admin_mode(action, actor)
    logger.info("admin %s by %s: mode %s (changed: %s)", action, actor, mode, changed)
    return ModeAnswer(ok=True, mode=mode, changed=changed)


_MODE_ERRORS = error_responses(503)


class AdminController(Controller):
    path = "/api/admin"
    tags = ["admin"]

    @post(
        "/maintenance",
        status_code=200,
        responses=_MODE_ERRORS,
        summary="Stop taking new orders (cancels still work); /health/ready turns 503",
    )
    async def maintenance(self, request: AnyRequest, engine_client: Client) -> ModeAnswer:
        return await _mode(engine_client, request, "maintenance")

    @post("/ready", status_code=200, responses=_MODE_ERRORS, summary="Leave maintenance")
    async def ready(self, request: AnyRequest, engine_client: Client) -> ModeAnswer:
        return await _mode(engine_client, request, "ready")

    @post(
        "/readonly",
        status_code=200,
        responses=_MODE_ERRORS,
        summary="Refuse every new order (cancels still work); survives a restart",
    )
    async def readonly(self, request: AnyRequest, engine_client: Client) -> ModeAnswer:
        return await _mode(engine_client, request, "readonly")

    @post("/readwrite", status_code=200, responses=_MODE_ERRORS, summary="Leave READONLY")
    async def readwrite(self, request: AnyRequest, engine_client: Client) -> ModeAnswer:
        return await _mode(engine_client, request, "readwrite")

    @post(
        "/log-level",
        status_code=200,
        responses=error_responses(413),
        summary="Change the log level at runtime",
        operation_class=body_operation(LOG_LEVEL_BODY),
    )
    async def log_level(self, request: AnyRequest, engine_client: Client) -> LogLevelAnswer:
        fields = await read_fields(request)
        level = fields.get("level")
        if not isinstance(level, str) or level.lower() not in LEVELS:
            raise CommandRejected("level must be one of debug, info, warn, error")
        set_level(level.lower())
        logger.info("admin log-level %s", level.lower())
        return LogLevelAnswer(ok=True, mode=engine_client.engine.mode, level=level.lower())

    @post(
        "/reload-config",
        status_code=200,
        responses=error_responses(),
        summary="Re-read the risk limits file; an invalid file is refused and the old limits stay",
    )
    async def reload_config(self, request: AnyRequest, engine_client: Client) -> ReloadAnswer:
        actor = _actor(request)
        loaded = engine_client.engine.reload_risk_limits(actor)
        logger.info("admin reload-config by %s: %s (%s)", actor, loaded.source, loaded.sha256)
        return ReloadAnswer(
            ok=True,
            mode=engine_client.engine.mode,
            source=loaded.source,
            sha256=loaded.sha256,
            loaded_at_ns=loaded.loaded_at_ns,
        )

    @post(
        "/reset-breaker",
        status_code=200,
        responses=error_responses(503),
        summary="Close the circuit breaker; a HALTED engine trades again",
    )
    async def reset_breaker(self, request: AnyRequest, engine_client: Client) -> ModeAnswer:
        actor = _actor(request)
        before = engine_client.engine.mode
        mode = await engine_client.engine.reset_breaker(actor)
        logger.info("admin reset-breaker by %s: mode %s", actor, mode)
        return ModeAnswer(ok=True, mode=mode, changed=mode is not before)

    @post(
        "/checkpoint",
        status_code=200,
        responses=error_responses(503),
        summary="Write a journal checkpoint now",
    )
    async def checkpoint(self, engine_client: Client) -> CheckpointAnswer:
        seq = await engine_client.checkpoint()
        logger.info("admin checkpoint at sequence %d", seq)
        return CheckpointAnswer(ok=True, mode=engine_client.engine.mode, seq=seq)
