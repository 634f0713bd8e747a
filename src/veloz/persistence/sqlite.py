"""The embedded history and credential store: stdlib sqlite3 in WAL mode. Every write goes
through one writer thread (SQLite has one writer at a time; one thread means no lock
waits), reads through a second connection on their own thread so a long batch never delays
the API."""

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from veloz.model.events import OrderFilled
from veloz.model.orders import Order
from veloz.model.queries import AuditQuery, OrderQuery, TradeQuery
from veloz.persistence import queries
from veloz.persistence.columns import (
    API_KEY_COLUMNS,
    AUDIT_COLUMNS,
    BALANCE_COLUMNS,
    EQUITY_COLUMNS,
    POSITION_COLUMNS,
    REFRESH_TOKEN_COLUMNS,
    api_key_record,
    api_key_values,
    audit_record,
    audit_values,
    fill_of,
    fill_values,
    mode_values,
    order_of,
    order_values,
    refresh_token_record,
    refresh_token_values,
    snapshot_values,
    user_record,
    user_values,
)
from veloz.persistence.migrations import load_migrations
from veloz.persistence.store import (
    PROJECTED_TABLES,
    SAMPLED_TABLES,
    ApiKeyRecord,
    AuditRecord,
    MigrationStatus,
    PortfolioSnapshot,
    ProjectionBatch,
    RefreshTokenRecord,
    StoreUnavailable,
    UserRecord,
)
from veloz.persistence.timefmt import sqlite_text

_T = TypeVar("_T")
_Q = queries.qmark
_UPSERT_ORDER = queries.upsert_order(_Q)
_INSERT_FILL = queries.insert_fill(_Q)
_INSERT_MODE = queries.insert_mode_change(_Q)
_INSERT_EQUITY = queries.insert_ignoring_duplicates("equity", EQUITY_COLUMNS, "ts_ns", _Q)
_INSERT_POSITION = queries.insert_ignoring_duplicates(
    "positions", POSITION_COLUMNS, "ts_ns, symbol", _Q
)
_INSERT_BALANCE = queries.insert_ignoring_duplicates(
    "balances", BALANCE_COLUMNS, "ts_ns, asset", _Q
)
_INSERT_AUDIT = queries.insert("audit_log", AUDIT_COLUMNS, _Q)
_UPSERT_USER = queries.upsert_user(_Q)
_ADD_USER = queries.add_user(_Q)
_PURGE_REFRESH_TOKENS = queries.purge_refresh_tokens(_Q)
_USER = queries.user_by_id(_Q)
_INSERT_API_KEY = queries.insert("api_keys", API_KEY_COLUMNS, _Q)
_REVOKE_API_KEY = queries.revoke_api_key(_Q)
_TOUCH_API_KEY = queries.touch_api_key(_Q)
_INSERT_REFRESH_TOKEN = queries.insert("refresh_tokens", REFRESH_TOKEN_COLUMNS, _Q)
_REFRESH_TOKEN = queries.refresh_token_by_hash(_Q)
_REVOKE_REFRESH_TOKEN = queries.revoke_refresh_token(_Q)
_REVOKE_REFRESH_TOKENS_OF = queries.revoke_refresh_tokens_of(_Q)
_SCHEMA_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL,"
    " applied_ns INTEGER NOT NULL)"
)


def _text(value: Decimal) -> str:
    return str(value)


class SqliteStore:
    def __init__(self, path: str, now_ns: Callable[[], int]) -> None:
        self._path = path
        self._now_ns = now_ns
        self._writer = self._reader = _closed_executor()
        self._write_conn: sqlite3.Connection | None = None
        self._read_conn: sqlite3.Connection | None = None

    @property
    def name(self) -> str:
        return f"sqlite:///{self._path}"

    # -- lifecycle -------------------------------------------------------------------

    async def connect(self) -> None:
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="veloz-sqlite-writer")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="veloz-sqlite-reader")
        self._write_conn = await self._on(self._writer, self._open)
        self._read_conn = await self._on(self._reader, self._open)

    async def close(self) -> None:
        for executor, conn in ((self._writer, self._write_conn), (self._reader, self._read_conn)):
            if conn is not None:
                await self._on(executor, conn.close)
            executor.shutdown(wait=True)
        self._write_conn = self._read_conn = None

    def _open(self) -> sqlite3.Connection:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are opened explicitly with BEGIN.
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode may lose the last transactions on power loss, never corrupt:
        # the projector re-projects them from the journal.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        # Off by default in SQLite: without it a refresh token could name a user that does
        # not exist, which PostgreSQL refuses.
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    async def _on(self, executor: ThreadPoolExecutor, work: Callable[[], _T]) -> _T:
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, work)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"{self.name}: {exc}") from None

    async def _write(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        conn = self._write_conn
        if conn is None:
            raise StoreUnavailable(f"{self.name}: not connected")
        return await self._on(self._writer, lambda: work(conn))

    async def _read(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        conn = self._read_conn
        if conn is None:
            raise StoreUnavailable(f"{self.name}: not connected")
        return await self._on(self._reader, lambda: work(conn))

    # -- migrations ------------------------------------------------------------------

    async def migrate(self) -> list[MigrationStatus]:
        return await self._write(self._migrate)

    def _migrate(self, conn: sqlite3.Connection) -> list[MigrationStatus]:
        conn.execute(_SCHEMA_MIGRATIONS)
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        done: list[MigrationStatus] = []
        for migration in load_migrations("sqlite"):
            if migration.version in applied:
                continue
            now = self._now_ns()
            with _transaction(conn):
                for statement in _statements(migration.sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?, ?)",
                    (migration.version, migration.name, sqlite_text(now), now),
                )
            done.append(
                MigrationStatus(version=migration.version, name=migration.name, applied_ns=now)
            )
        return done

    async def migrations(self) -> list[MigrationStatus]:
        def read(conn: sqlite3.Connection) -> dict[int, int]:
            conn.execute(_SCHEMA_MIGRATIONS)
            return dict(
                conn.execute("SELECT version, applied_ns FROM schema_migrations").fetchall()
            )

        applied = await self._write(read)
        return [
            MigrationStatus(version=m.version, name=m.name, applied_ns=applied.get(m.version))
            for m in load_migrations("sqlite")
        ]

    # -- the projection --------------------------------------------------------------

    async def high_water(self) -> int:
        return await self._read(
            lambda conn: int(conn.execute("SELECT last_seq FROM projector_state").fetchone()[0])
        )

    async def apply(self, batch: ProjectionBatch) -> None:
        orders = [order_values(r, _text, sqlite_text) for r in batch.orders]
        fills = [fill_values(r, _text, sqlite_text) for r in batch.fills]
        modes = [mode_values(r, sqlite_text) for r in batch.mode_changes]
        now = sqlite_text(self._now_ns())

        def write(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.executemany(_UPSERT_ORDER, orders)
                conn.executemany(_INSERT_FILL, fills)
                conn.executemany(_INSERT_MODE, modes)
                conn.execute(
                    "UPDATE projector_state SET last_seq = ?, updated_at = ? WHERE last_seq < ?",
                    (batch.last_seq, now, batch.last_seq),
                )

        await self._write(write)

    async def reset_projection(self) -> None:
        def reset(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                for table in PROJECTED_TABLES:
                    conn.execute(f"DELETE FROM {table}")
                conn.execute("UPDATE projector_state SET last_seq = 0")

        await self._write(reset)

    async def open_orders(self) -> list[Order]:
        def read(conn: sqlite3.Connection) -> list[Order]:
            trade_ids: dict[str, list[str]] = {}
            for coid, trade_id in conn.execute(queries.OPEN_ORDER_TRADES):
                trade_ids.setdefault(coid, []).append(trade_id)
            rows = conn.execute(queries.OPEN_ORDERS).fetchall()
            return [order_of(r, trade_ids.get(r["client_order_id"], [])) for r in rows]

        return await self._read(read)

    # -- reads -----------------------------------------------------------------------

    async def orders(self, query: OrderQuery) -> list[Order]:
        sql, params = queries.orders_query(query, _Q)
        return await self._read(lambda conn: [order_of(r) for r in conn.execute(sql, params)])

    async def trades(self, query: TradeQuery) -> list[OrderFilled]:
        sql, params = queries.trades_query(query, _Q)
        return await self._read(lambda conn: [fill_of(r) for r in conn.execute(sql, params)])

    async def audit_log(self, query: AuditQuery) -> list[AuditRecord]:
        sql, params = queries.audit_query(query, _Q)
        return await self._read(
            lambda conn: [
                audit_record(r, json.loads(r["params"])) for r in conn.execute(sql, params)
            ]
        )

    async def table_counts(self) -> dict[str, int]:
        def count(conn: sqlite3.Connection) -> dict[str, int]:
            return {
                table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                for table in PROJECTED_TABLES + SAMPLED_TABLES
            }

        return await self._read(count)

    # -- samples and the audit trail -------------------------------------------------

    async def record_snapshot(self, snapshot: PortfolioSnapshot) -> None:
        equity, positions, balances = snapshot_values(snapshot, _text, sqlite_text)

        def write(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.execute(_INSERT_EQUITY, equity)
                conn.executemany(_INSERT_POSITION, positions)
                conn.executemany(_INSERT_BALANCE, balances)

        await self._write(write)

    async def record_audits(self, records: Sequence[AuditRecord]) -> None:
        values = [audit_values(record, sqlite_text) for record in records]

        def write(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.executemany(_INSERT_AUDIT, values)

        await self._write(write)

    # -- credentials -----------------------------------------------------------------

    async def save_user(self, user: UserRecord) -> None:
        values = user_values(user, sqlite_text)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(_UPSERT_USER, values)

        await self._write(write)

    async def add_user(self, user: UserRecord) -> bool:
        values = user_values(user, sqlite_text)
        inserted = await self._write(lambda conn: conn.execute(_ADD_USER, values).rowcount)
        return inserted == 1

    async def user(self, user_id: str) -> UserRecord | None:
        row = await self._read(lambda conn: conn.execute(_USER, (user_id,)).fetchone())
        return None if row is None else user_record(row)

    async def users(self) -> list[UserRecord]:
        return await self._read(lambda conn: [user_record(r) for r in conn.execute(queries.USERS)])

    async def add_api_key(self, key: ApiKeyRecord) -> None:
        """A key id or key hash that exists already raises StoreUnavailable (the database
        refused the statement): ids are generated, so that is a bug, not a user's error."""
        values = api_key_values(key, sqlite_text)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(_INSERT_API_KEY, values)

        await self._write(write)

    async def api_keys(self) -> list[ApiKeyRecord]:
        return await self._read(
            lambda conn: [api_key_record(r) for r in conn.execute(queries.API_KEYS)]
        )

    async def revoke_api_key(self, key_id: str, revoked_ns: int) -> bool:
        changed = await self._write(
            lambda conn: conn.execute(_REVOKE_API_KEY, (revoked_ns, key_id)).rowcount
        )
        return changed == 1

    async def touch_api_keys(self, last_used: dict[str, int]) -> None:
        rows = [(ts_ns, key_id, ts_ns) for key_id, ts_ns in last_used.items()]
        if not rows:
            return

        def write(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.executemany(_TOUCH_API_KEY, rows)

        await self._write(write)

    async def add_refresh_token(self, token: RefreshTokenRecord) -> None:
        values = refresh_token_values(token)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(_INSERT_REFRESH_TOKEN, values)

        await self._write(write)

    async def refresh_token(self, token_hash: str) -> RefreshTokenRecord | None:
        row = await self._read(lambda conn: conn.execute(_REFRESH_TOKEN, (token_hash,)).fetchone())
        return None if row is None else refresh_token_record(row)

    async def revoke_refresh_token(self, token_hash: str, revoked_ns: int) -> bool:
        # One conditional UPDATE on the one writer thread: of two refreshes with the same
        # token, the second finds it revoked already.
        changed = await self._write(
            lambda conn: conn.execute(_REVOKE_REFRESH_TOKEN, (revoked_ns, token_hash)).rowcount
        )
        return changed == 1

    async def revoke_refresh_tokens_of(self, user_id: str, revoked_ns: int) -> int:
        return await self._write(
            lambda conn: conn.execute(_REVOKE_REFRESH_TOKENS_OF, (revoked_ns, user_id)).rowcount
        )

    async def purge_refresh_tokens(self, before_ns: int) -> int:
        return await self._write(
            lambda conn: conn.execute(_PURGE_REFRESH_TOKENS, (before_ns, before_ns)).rowcount
        )


def _closed_executor() -> ThreadPoolExecutor:
    executor = ThreadPoolExecutor(max_workers=1)
    executor.shutdown()
    return executor


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN ... COMMIT, or ROLLBACK on any error (the connection is in autocommit mode)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _statements(script: str) -> list[str]:
    """Split a migration into statements (ours hold no semicolons inside strings)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
