"""The queries both stores run, written once with a placeholder style per dialect
(`?` for SQLite, `$1` for PostgreSQL)."""

from collections.abc import Callable
from typing import Any

from veloz.model.queries import AuditQuery, OrderQuery, TradeQuery
from veloz.persistence.columns import (
    API_KEY_COLUMNS,
    AUDIT_COLUMNS,
    FILL_COLUMNS,
    MODE_COLUMNS,
    ORDER_COLUMNS,
    REFRESH_TOKEN_COLUMNS,
    USER_COLUMNS,
)

Placeholder = Callable[[int], str]


def qmark(_: int) -> str:
    return "?"


def dollar(n: int) -> str:
    return f"${n}"


class _Where:
    def __init__(self, placeholder: Placeholder) -> None:
        self._placeholder = placeholder
        self.clauses: list[str] = []
        self.params: list[Any] = []

    def add(self, template: str, *values: Any) -> None:
        marks = []
        for value in values:
            self.params.append(value)
            marks.append(self._placeholder(len(self.params)))
        self.clauses.append(template.format(*marks))

    def sql(self) -> str:
        return f" WHERE {' AND '.join(self.clauses)}" if self.clauses else ""

    def limit(self, limit: int | None) -> str:
        if limit is None:
            return ""
        self.params.append(limit)
        return f" LIMIT {self._placeholder(len(self.params))}"


def orders_query(query: OrderQuery, placeholder: Placeholder) -> tuple[str, list[Any]]:
    where = _Where(placeholder)
    if query.statuses is not None:
        statuses = sorted(s.value for s in query.statuses)
        where.add(f"status IN ({', '.join('{}' for _ in statuses)})", *statuses)
    if query.symbol is not None:
        where.add("symbol = {}", query.symbol)
    if query.before_ts_ns is not None:
        where.add("created_ns < {}", query.before_ts_ns)
    sql = (
        f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders{where.sql()}"
        " ORDER BY created_ns DESC, client_order_id DESC"
    )
    return sql + where.limit(query.limit), where.params


def trades_query(query: TradeQuery, placeholder: Placeholder) -> tuple[str, list[Any]]:
    where = _Where(placeholder)
    if query.symbol is not None:
        where.add("symbol = {}", query.symbol)
    if query.client_order_id is not None:
        where.add("client_order_id = {}", query.client_order_id)
    if query.before_ts_ns is not None:
        where.add("ts_ns < {}", query.before_ts_ns)
    sql = (
        f"SELECT {', '.join(FILL_COLUMNS)} FROM fills{where.sql()}"
        " ORDER BY ts_ns DESC, trade_id DESC"
    )
    return sql + where.limit(query.limit), where.params


def audit_query(query: AuditQuery, placeholder: Placeholder) -> tuple[str, list[Any]]:
    where = _Where(placeholder)
    if query.actor is not None:
        where.add("actor = {}", query.actor)
    if query.action is not None:
        where.add("action = {}", query.action)
    if query.since_ts_ns is not None:
        where.add("ts_ns >= {}", query.since_ts_ns)
    if query.before_ts_ns is not None:
        where.add("ts_ns < {}", query.before_ts_ns)
    sql = (
        f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_log{where.sql()}"
        " ORDER BY ts_ns DESC, id DESC"
    )
    return sql + where.limit(query.limit), where.params


OPEN_ORDERS = (
    f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders"
    " WHERE status NOT IN ('FILLED', 'CANCELLED', 'REJECTED', 'EXPIRED')"
)
OPEN_ORDER_TRADES = (
    "SELECT f.client_order_id, f.trade_id FROM fills f JOIN orders o"
    " ON o.client_order_id = f.client_order_id"
    " WHERE o.status NOT IN ('FILLED', 'CANCELLED', 'REJECTED', 'EXPIRED')"
    " ORDER BY f.journal_seq, f.trade_id"
)


def upsert_order(placeholder: Placeholder) -> str:
    """Insert an order or move it forward; a row from an older journal entry never
    overwrites a newer one (replays are idempotent)."""
    marks = ", ".join(placeholder(i + 1) for i in range(len(ORDER_COLUMNS)))
    updates = ", ".join(f"{c} = excluded.{c}" for c in ORDER_COLUMNS[1:])
    return (
        f"INSERT INTO orders ({', '.join(ORDER_COLUMNS)}) VALUES ({marks})"
        f" ON CONFLICT (client_order_id) DO UPDATE SET {updates}"
        " WHERE excluded.journal_seq > orders.journal_seq"
    )


def insert_fill(placeholder: Placeholder) -> str:
    return insert_ignoring_duplicates("fills", FILL_COLUMNS, "symbol, trade_id", placeholder)


def insert_mode_change(placeholder: Placeholder) -> str:
    return insert_ignoring_duplicates("mode_changes", MODE_COLUMNS, "journal_seq", placeholder)


def insert_ignoring_duplicates(
    table: str, columns: tuple[str, ...], key: str, placeholder: Placeholder
) -> str:
    marks = ", ".join(placeholder(i + 1) for i in range(len(columns)))
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        f" ON CONFLICT ({key}) DO NOTHING"
    )


def insert(table: str, columns: tuple[str, ...], placeholder: Placeholder) -> str:
    marks = ", ".join(placeholder(i + 1) for i in range(len(columns)))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"


# -- credentials ---------------------------------------------------------------------

USERS = f"SELECT {', '.join(USER_COLUMNS)} FROM users ORDER BY user_id"
API_KEYS = f"SELECT {', '.join(API_KEY_COLUMNS)} FROM api_keys ORDER BY created_ns, key_id"


def upsert_user(placeholder: Placeholder) -> str:
    """Insert a user or replace every field of the existing one."""
    marks = ", ".join(placeholder(i + 1) for i in range(len(USER_COLUMNS)))
    updates = ", ".join(f"{c} = excluded.{c}" for c in USER_COLUMNS[1:])
    return (
        f"INSERT INTO users ({', '.join(USER_COLUMNS)}) VALUES ({marks})"
        f" ON CONFLICT (user_id) DO UPDATE SET {updates}"
    )


def add_user(placeholder: Placeholder) -> str:
    """Insert a user unless the id exists (then nothing changes: no silent overwrite)."""
    marks = ", ".join(placeholder(i + 1) for i in range(len(USER_COLUMNS)))
    return (
        f"INSERT INTO users ({', '.join(USER_COLUMNS)}) VALUES ({marks})"
        " ON CONFLICT (user_id) DO NOTHING"
    )


def user_by_id(placeholder: Placeholder) -> str:
    return f"SELECT {', '.join(USER_COLUMNS)} FROM users WHERE user_id = {placeholder(1)}"


def revoke_api_key(placeholder: Placeholder) -> str:
    """(revoked_ns, key_id): changes one row if the key is live, none otherwise, so the
    affected row count answers whether this call revoked it."""
    return (
        f"UPDATE api_keys SET revoked_ns = {placeholder(1)}"
        f" WHERE key_id = {placeholder(2)} AND revoked_ns IS NULL"
    )


def touch_api_key(placeholder: Placeholder) -> str:
    """(ts_ns, key_id, ts_ns): the time only ever moves forward. A condition rather than
    GREATEST/max() (named differently per dialect), and a time that is not newer writes
    nothing at all."""
    return (
        f"UPDATE api_keys SET last_used_ns = {placeholder(1)} WHERE key_id = {placeholder(2)}"
        f" AND (last_used_ns IS NULL OR last_used_ns < {placeholder(3)})"
    )


def refresh_token_by_hash(placeholder: Placeholder) -> str:
    return (
        f"SELECT {', '.join(REFRESH_TOKEN_COLUMNS)} FROM refresh_tokens"
        f" WHERE token_hash = {placeholder(1)}"
    )


def revoke_refresh_token(placeholder: Placeholder) -> str:
    """(revoked_ns, token_hash): one statement, so of two refreshes racing with the same
    token exactly one changes the row (PostgreSQL re-checks the condition after waiting
    for the other's row lock; SQLite has one writer)."""
    return (
        f"UPDATE refresh_tokens SET revoked_ns = {placeholder(1)}"
        f" WHERE token_hash = {placeholder(2)} AND revoked_ns IS NULL"
    )


def revoke_refresh_tokens_of(placeholder: Placeholder) -> str:
    """(revoked_ns, user_id): every live token of the user; already revoked ones keep
    their time."""
    return (
        f"UPDATE refresh_tokens SET revoked_ns = {placeholder(1)}"
        f" WHERE user_id = {placeholder(2)} AND revoked_ns IS NULL"
    )


def purge_refresh_tokens(placeholder: Placeholder) -> str:
    """(before_ns, before_ns): tokens that expired, or were revoked, before the time."""
    return (
        f"DELETE FROM refresh_tokens WHERE expires_ns < {placeholder(1)}"
        f" OR (revoked_ns IS NOT NULL AND revoked_ns < {placeholder(2)})"
    )
