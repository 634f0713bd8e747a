"""The embedded history store: stdlib sqlite3 in WAL mode. Every write goes through one
writer thread (SQLite has one writer at a time; one thread means no lock waits), reads
through a second connection on their own thread so a long batch never delays the API."""

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from veloz.model.events import OrderFilled
from veloz.model.orders import Order
from veloz.persistence import queries
from veloz.persistence.columns import (
    AUDIT_COLUMNS,
    BALANCE_COLUMNS,
    EQUITY_COLUMNS,
    POSITION_COLUMNS,
    audit_record,
    audit_values,
    fill_row,
    fill_values,
    mode_values,
    order_row,
    order_values,
    snapshot_values,
)
from veloz.persistence.migrations import load_migrations
from veloz.persistence.store import (
    PROJECTED_TABLES,
    SAMPLED_TABLES,
    AuditQuery,
    AuditRecord,
    MigrationStatus,
    OrderQuery,
    PortfolioSnapshot,
    ProjectionBatch,
    StoreUnavailable,
    TradeQuery,
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
            return [order_row(r).to_order(trade_ids.get(r["client_order_id"], [])) for r in rows]

        return await self._read(read)

    # -- reads -----------------------------------------------------------------------

    async def orders(self, query: OrderQuery) -> list[Order]:
        sql, params = queries.orders_query(query, _Q)
        return await self._read(
            lambda conn: [order_row(r).to_order() for r in conn.execute(sql, params)]
        )

    async def trades(self, query: TradeQuery) -> list[OrderFilled]:
        sql, params = queries.trades_query(query, _Q)
        return await self._read(
            lambda conn: [fill_row(r).to_event() for r in conn.execute(sql, params)]
        )

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

    async def record_audit(self, record: AuditRecord) -> None:
        values = audit_values(record, sqlite_text)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(_INSERT_AUDIT, values)

        await self._write(write)


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
