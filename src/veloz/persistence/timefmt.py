"""Nanosecond timestamps as the human-readable time columns the stores keep beside them."""

from datetime import UTC, datetime


def utc_datetime(ts_ns: int) -> datetime:
    """Exact to the microsecond (the most a datetime holds); the `*_ns` column keeps the rest."""
    seconds, rest = divmod(ts_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)


def sqlite_text(ts_ns: int) -> str:
    """SQLite's own datetime layout (`YYYY-MM-DD HH:MM:SS.ffffff`, UTC), so comparisons with
    `datetime('now', '-1 hour')` work in plain SQL."""
    return utc_datetime(ts_ns).strftime("%Y-%m-%d %H:%M:%S.%f")
