"""Logging: structlog JSON, one object per line. Every stdlib logger (ours, uvicorn's,
Litestar's) goes through the same processors, so every line has a timestamp, level, logger
and any context bound for the request or order (`bind_contextvars`).

Service mode writes to stdout (the journal under systemd) and, with VELOZ_LOG_DIR, to
`<VELOZ_LOG_DIR>/veloz.log` as well: the runbooks read both (`journalctl -u veloz`, `grep
… /var/log/veloz/*.log`). stdio mode writes to stderr because its stdout carries the
events. Known secret values are replaced with
`***` in every line as a last guard: secrets are never meant to reach a log at all.
"""

import logging
import sys
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import Any, TextIO

import structlog

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
# Loggers that install their own handlers; theirs go through ours instead.
_ADOPTED = ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar", "asyncio")


class SecretRedactor:
    """Replaces every occurrence of the given secret values in a log event's strings."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = [s for s in secrets if len(s) >= 4]

    def __call__(
        self, _: Any, __: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event.items():
            if isinstance(value, str):
                event[key] = self.redact(value)
        return event

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def configure_logging(
    level: str,
    *,
    stream: TextIO | None = None,
    log_dir: Path | None = None,
    secrets: Iterable[str] = (),
) -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    redact = SecretRedactor(secrets)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            redact,
            structlog.processors.JSONRenderer(),
        ],
    )
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stdout)]
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_dir / "veloz.log"))
    for handler in handlers:
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(LEVELS[level])
    for name in _ADOPTED:
        adopted = logging.getLogger(name)
        adopted.handlers[:] = []
        adopted.propagate = True
    # Libraries whose debug lines say nothing about trading (a file watcher's poll every
    # few seconds, the schema generator's examples, every request a client library makes):
    # `debug` is for VeloZ's own lines; theirs start at INFO, or WARNING for the chattiest.
    for name, floor in _LIBRARY_FLOORS.items():
        logging.getLogger(name).setLevel(floor)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


_LIBRARY_FLOORS = {
    "watchfiles": logging.WARNING,
    "faker": logging.WARNING,
    "aiohttp.access": logging.WARNING,
    "asyncio": logging.INFO,
    "aiohttp": logging.INFO,
    "httpx": logging.INFO,
    "httpcore": logging.INFO,
    "hpack": logging.INFO,
    "multipart": logging.INFO,
    "uvicorn": logging.INFO,
    "litestar": logging.INFO,
}


def set_level(level: str) -> None:
    """Change the level at runtime (`POST /api/admin/log-level`)."""
    logging.getLogger().setLevel(LEVELS[level])
