"""Admin routes: trading modes, the breaker, risk limits, log level, checkpoints. Each
answers `{"ok", "mode", ...}` and is audited by the access control (`veloz.api.access`)
like every mutating request."""

import logging
from typing import Literal

import msgspec
from litestar import Controller, post

from veloz.api.body import AnyRequest, body_operation, read_fields
from veloz.api.deps import Client
from veloz.api.errors import error_responses
from veloz.engine.views.admin import CheckpointAnswer, LogLevelAnswer, ModeAnswer, ReloadAnswer
from veloz.model.enums import ModeAction
from veloz.model.errors import CommandRejected
from veloz.observability.logs import LEVELS

logger = logging.getLogger(__name__)


class SetLogLevel(msgspec.Struct, frozen=True, kw_only=True):
    """The body of `POST /api/admin/log-level` (any case)."""

    level: Literal["debug", "info", "warn", "error"]


def actor_of(request: AnyRequest) -> str:
    """Who asked, as the audit trail and the journal name them: `user:<id>`, `key:<id>`,
    or `anonymous:<address>` with authentication off."""
    principal = request.scope.get("state", {}).get("principal")
    if principal is not None:
        return str(principal.actor)
    return f"anonymous:{request.client.host if request.client else 'unknown'}"


async def _mode(engine_client: Client, request: AnyRequest, action: ModeAction) -> ModeAnswer:
    actor = actor_of(request)
    answer = await engine_client.set_mode(action, actor)
    logger.info("admin %s by %s: mode %s (changed: %s)", action, actor, answer.mode, answer.changed)
    return answer


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
        return await _mode(engine_client, request, ModeAction.MAINTENANCE)

    @post("/ready", status_code=200, responses=_MODE_ERRORS, summary="Leave maintenance")
    async def ready(self, request: AnyRequest, engine_client: Client) -> ModeAnswer:
        return await _mode(engine_client, request, ModeAction.READY)

    @post(
        "/readonly",
        status_code=200,
        responses=_MODE_ERRORS,
        summary="Refuse every new order (cancels still work); survives a restart",
    )
    async def readonly(self, request: AnyRequest, engine_client: Client) -> ModeAnswer:
        return await _mode(engine_client, request, ModeAction.READONLY)

    @post("/readwrite", status_code=200, responses=_MODE_ERRORS, summary="Leave READONLY")
    async def readwrite(self, request: AnyRequest, engine_client: Client) -> ModeAnswer:
        return await _mode(engine_client, request, ModeAction.READWRITE)

    @post(
        "/log-level",
        status_code=200,
        responses=error_responses(413),
        summary="Change the engine's log level (and the answering gateway's) until it stops",
        operation_class=body_operation(SetLogLevel),
    )
    async def log_level(self, request: AnyRequest, engine_client: Client) -> LogLevelAnswer:
        fields = await read_fields(request)
        level = fields.get("level")
        if not isinstance(level, str) or level.lower() not in LEVELS:
            raise CommandRejected("level must be one of debug, info, warn, error")
        answer = await engine_client.set_log_level(level.lower())
        logger.info("admin log-level %s (%s)", answer.level, ", ".join(answer.applied_to))
        return answer

    @post(
        "/reload-config",
        status_code=200,
        responses=error_responses(),
        summary="Re-read the risk limits file; an invalid file is refused and the old limits stay",
    )
    async def reload_config(self, request: AnyRequest, engine_client: Client) -> ReloadAnswer:
        actor = actor_of(request)
        answer = await engine_client.reload_risk_limits(actor)
        logger.info("admin reload-config by %s: %s (%s)", actor, answer.source, answer.sha256)
        return answer

    @post(
        "/reset-breaker",
        status_code=200,
        responses=error_responses(503),
        summary="Close the circuit breaker; a HALTED engine trades again",
    )
    async def reset_breaker(self, request: AnyRequest, engine_client: Client) -> ModeAnswer:
        actor = actor_of(request)
        answer = await engine_client.reset_breaker(actor)
        logger.info("admin reset-breaker by %s: mode %s", actor, answer.mode)
        return answer

    @post(
        "/checkpoint",
        status_code=200,
        responses=error_responses(503),
        summary="Write a journal checkpoint now",
    )
    async def checkpoint(self, engine_client: Client) -> CheckpointAnswer:
        answer = await engine_client.checkpoint()
        logger.info("admin checkpoint at sequence %d", answer.seq)
        return answer
