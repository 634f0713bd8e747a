"""Logging setup: one line per record on stderr (stdout belongs to stdio mode's events)."""

import logging
import sys

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])


def set_level(level: str) -> None:
    """Change the level at runtime (`POST /api/admin/log-level`)."""
    logging.getLogger().setLevel(LEVELS[level])
