"""Nanosecond timestamps as the human-readable time columns the stores keep beside them."""

import functools
import time
from datetime import UTC, datetime


def utc_datetime(ts_ns: int) -> datetime:
    """Exact to the microsecond (the most a datetime holds); the `*_ns` column keeps the rest."""
    seconds, rest = divmod(ts_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)


def sqlite_text(ts_ns: int) -> str:
    """SQLite's own datetime layout (`YYYY-MM-DD HH:MM:SS.ffffff`, UTC), so comparisons with
    `datetime('now', '-1 hour')` work in plain SQL."""
    seconds, rest = divmod(ts_ns, 1_000_000_000)
    return f"{_second_text(seconds)}.{rest // 1000:06d}"


@functools.lru_cache(maxsize=4096)
def _second_text(seconds: int) -> str:
    # Rows written together share their second: formatting it once per second is what
    # keeps this off the projector's profile.
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))
