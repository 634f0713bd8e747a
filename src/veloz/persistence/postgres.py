"""The production history and credential store: PostgreSQL through an asyncpg connection
pool. Money and quantities go in and come out as `Decimal` (NUMERIC, exact), times as
TIMESTAMPTZ beside their exact nanoseconds, the audit parameters as JSONB; every asyncpg or
network error (a refused constraint included) leaves as StoreUnavailable, named by the URL
without its password."""

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import asyncpg

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
from veloz.persistence.timefmt import utc_datetime
from veloz.persistence.urls import redact

_Q = queries.dollar
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
# asyncpg's own jsonb codec takes and gives JSON text: the parameter is sent as jsonb
# (inferred from the column) and read back as a string.
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
_ADVANCE_HIGH_WATER = (
    "UPDATE projector_state SET last_seq = $1, updated_at = now() WHERE last_seq < $1"
)
# One round trip and one snapshot, so the counts agree with each other.
_TABLE_COUNTS = "SELECT " + ", ".join(
    f"(SELECT count(*) FROM {table}) AS {table}" for table in PROJECTED_TABLES + SAMPLED_TABLES
)
_SCHEMA_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL,"
    " applied_ns BIGINT NOT NULL)"
)
# Serialises migrators (two replicas starting at once): "velozmig" as a bigint.
_MIGRATION_LOCK = 0x76656C6F7A6D6967
_TAKE_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock($1)"
_APPLIED = "SELECT version, applied_ns FROM schema_migrations"
_IS_APPLIED = "SELECT true FROM schema_migrations WHERE version = $1"
# Waiting for another migrator, or building an index on a large table, outlasts the
# per-statement command timeout; a migration is allowed this long instead.
_MIGRATION_TIMEOUT = 3600.0
_CONNECT_TIMEOUT = 5.0
# TimeoutError and ConnectionError are OSErrors. InternalClientError covers protocol
# confusion (a misbehaving proxy in between) and a schema cache gone stale under a migration.
_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


def _same(value: Decimal) -> Decimal:
    return value


class PostgresStore:
    def __init__(
        self,
        url: str,
        now_ns: Callable[[], int],
        *,
        min_size: int = 1,
        max_size: int = 4,
        command_timeout: float = 10.0,
    ) -> None:
        self._url = url
        self._now_ns = now_ns
        self._min_size = min_size
        self._max_size = max_size
        self._command_timeout = command_timeout
        self._pool: Any = None

    @property
    def name(self) -> str:
        return redact(self._url)

    # -- lifecycle -------------------------------------------------------------------

    async def connect(self) -> None:
        with self._unavailable():
            self._pool = await asyncpg.create_pool(
                dsn=self._url,
                min_size=self._min_size,
                max_size=self._max_size,
                command_timeout=self._command_timeout,
                timeout=_CONNECT_TIMEOUT,
            )

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            with self._unavailable():
                await pool.close()

    @contextlib.contextmanager
    def _unavailable(self) -> Iterator[None]:
        try:
            yield
        except _UNAVAILABLE as exc:
            # The name, never the URL: the URL may hold the password. A timeout's message
            # is empty, so say what it was.
            raise StoreUnavailable(f"{self.name}: {str(exc) or type(exc).__name__}") from None

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        pool = self._pool
        if pool is None:
            raise StoreUnavailable(f"{self.name}: not connected")
        with self._unavailable():
            async with pool.acquire() as conn:
                yield conn

    # -- migrations ------------------------------------------------------------------

    async def migrate(self) -> list[MigrationStatus]:
        done: list[MigrationStatus] = []
        async with self._connection() as conn:
            # Under the lock too: two concurrent CREATE TABLE IF NOT EXISTS can both miss
            # the table and one then fails on the catalog's unique index.
            async with conn.transaction():
                await conn.execute(
                    _TAKE_MIGRATION_LOCK, _MIGRATION_LOCK, timeout=_MIGRATION_TIMEOUT
                )
                await conn.execute(_SCHEMA_MIGRATIONS)
            applied = {row["version"] for row in await conn.fetch(_APPLIED)}
            for migration in load_migrations("postgres"):
                if migration.version in applied:
                    continue
                now = self._now_ns()
                async with conn.transaction():
                    await conn.execute(
                        _TAKE_MIGRATION_LOCK, _MIGRATION_LOCK, timeout=_MIGRATION_TIMEOUT
                    )
                    # Another migrator may have applied it while this one waited.
                    if await conn.fetchval(_IS_APPLIED, migration.version):
                        continue
                    # No arguments: the simple protocol, which runs a whole script.
                    await conn.execute(migration.sql, timeout=_MIGRATION_TIMEOUT)
                    await conn.execute(
                        "INSERT INTO schema_migrations VALUES ($1, $2, $3, $4)",
                        migration.version,
                        migration.name,
                        utc_datetime(now),
                        now,
                    )
                done.append(
                    MigrationStatus(version=migration.version, name=migration.name, applied_ns=now)
                )
        return done

    async def migrations(self) -> list[MigrationStatus]:
        async with self._connection() as conn:
            # Looked up rather than created: a status read needs no DDL rights.
            if await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
                applied = {r["version"]: r["applied_ns"] for r in await conn.fetch(_APPLIED)}
            else:
                applied = {}
        return [
            MigrationStatus(version=m.version, name=m.name, applied_ns=applied.get(m.version))
            for m in load_migrations("postgres")
        ]

    # -- the projection --------------------------------------------------------------

    async def high_water(self) -> int:
        async with self._connection() as conn:
            return int(await conn.fetchval("SELECT last_seq FROM projector_state"))

    async def apply(self, batch: ProjectionBatch) -> None:
        orders = [order_values(r, _same, utc_datetime) for r in batch.orders]
        fills = [fill_values(r, _same, utc_datetime) for r in batch.fills]
        modes = [mode_values(r, utc_datetime) for r in batch.mode_changes]
        async with self._connection() as conn, conn.transaction():
            await _executemany(conn, _UPSERT_ORDER, orders)
            await _executemany(conn, _INSERT_FILL, fills)
            await _executemany(conn, _INSERT_MODE, modes)
            await conn.execute(_ADVANCE_HIGH_WATER, batch.last_seq)

    async def reset_projection(self) -> None:
        async with self._connection() as conn, conn.transaction():
            # TRUNCATE rather than DELETE: a rebuild starts from tables with no dead rows,
            # and it is transactional here, so a failed reset leaves the projection whole.
            await conn.execute(f"TRUNCATE {', '.join(PROJECTED_TABLES)}")
            await conn.execute("UPDATE projector_state SET last_seq = 0, updated_at = now()")

    async def open_orders(self) -> list[Order]:
        # One snapshot for both reads, so no fill lands between them.
        async with (
            self._connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            trade_ids: dict[str, list[str]] = {}
            for r in await conn.fetch(queries.OPEN_ORDER_TRADES):
                trade_ids.setdefault(r["client_order_id"], []).append(r["trade_id"])
            rows = await conn.fetch(queries.OPEN_ORDERS)
        return [order_of(r, trade_ids.get(r["client_order_id"], [])) for r in rows]

    # -- reads -----------------------------------------------------------------------

    async def orders(self, query: OrderQuery) -> list[Order]:
        sql, params = queries.orders_query(query, _Q)
        async with self._connection() as conn:
            return [order_of(r) for r in await conn.fetch(sql, *params)]

    async def trades(self, query: TradeQuery) -> list[OrderFilled]:
        sql, params = queries.trades_query(query, _Q)
        async with self._connection() as conn:
            return [fill_of(r) for r in await conn.fetch(sql, *params)]

    async def audit_log(self, query: AuditQuery) -> list[AuditRecord]:
        sql, params = queries.audit_query(query, _Q)
        async with self._connection() as conn:
            return [
                audit_record(r, json.loads(r["params"])) for r in await conn.fetch(sql, *params)
            ]

    async def table_counts(self) -> dict[str, int]:
        async with self._connection() as conn:
            row = await conn.fetchrow(_TABLE_COUNTS)
        return {table: int(row[table]) for table in PROJECTED_TABLES + SAMPLED_TABLES}

    # -- samples and the audit trail -------------------------------------------------

    async def record_snapshot(self, snapshot: PortfolioSnapshot) -> None:
        equity, positions, balances = snapshot_values(snapshot, _same, utc_datetime)
        async with self._connection() as conn, conn.transaction():
            await conn.execute(_INSERT_EQUITY, *equity)
            await _executemany(conn, _INSERT_POSITION, positions)
            await _executemany(conn, _INSERT_BALANCE, balances)

    async def record_audits(self, records: Sequence[AuditRecord]) -> None:
        values = [audit_values(record, utc_datetime) for record in records]
        async with self._connection() as conn, conn.transaction():
            await _executemany(conn, _INSERT_AUDIT, values)

    # -- credentials -----------------------------------------------------------------

    async def save_user(self, user: UserRecord) -> None:
        values = user_values(user, utc_datetime)
        async with self._connection() as conn:
            await conn.execute(_UPSERT_USER, *values)

    async def add_user(self, user: UserRecord) -> bool:
        values = user_values(user, utc_datetime)
        async with self._connection() as conn:
            return _affected(await conn.execute(_ADD_USER, *values)) == 1

    async def user(self, user_id: str) -> UserRecord | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(_USER, user_id)
        return None if row is None else user_record(row)

    async def users(self) -> list[UserRecord]:
        async with self._connection() as conn:
            return [user_record(r) for r in await conn.fetch(queries.USERS)]

    async def add_api_key(self, key: ApiKeyRecord) -> None:
        """A key id or key hash that exists already raises StoreUnavailable (the database
        refused the statement): ids are generated, so that is a bug, not a user's error."""
        values = api_key_values(key, utc_datetime)
        async with self._connection() as conn:
            await conn.execute(_INSERT_API_KEY, *values)

    async def api_keys(self) -> list[ApiKeyRecord]:
        async with self._connection() as conn:
            return [api_key_record(r) for r in await conn.fetch(queries.API_KEYS)]

    async def revoke_api_key(self, key_id: str, revoked_ns: int) -> bool:
        async with self._connection() as conn:
            return _affected(await conn.execute(_REVOKE_API_KEY, revoked_ns, key_id)) == 1

    async def touch_api_keys(self, last_used: dict[str, int]) -> None:
        # In key order: two batches touching the same keys lock their rows in the same
        # order, so they wait for each other instead of deadlocking.
        rows = [(last_used[key_id], key_id, last_used[key_id]) for key_id in sorted(last_used)]
        async with self._connection() as conn, conn.transaction():
            await _executemany(conn, _TOUCH_API_KEY, rows)

    async def add_refresh_token(self, token: RefreshTokenRecord) -> None:
        values = refresh_token_values(token)
        async with self._connection() as conn:
            await conn.execute(_INSERT_REFRESH_TOKEN, *values)

    async def refresh_token(self, token_hash: str) -> RefreshTokenRecord | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(_REFRESH_TOKEN, token_hash)
        return None if row is None else refresh_token_record(row)

    async def revoke_refresh_token(self, token_hash: str, revoked_ns: int) -> bool:
        async with self._connection() as conn:
            status = await conn.execute(_REVOKE_REFRESH_TOKEN, revoked_ns, token_hash)
        return _affected(status) == 1

    async def revoke_refresh_tokens_of(self, user_id: str, revoked_ns: int) -> int:
        async with self._connection() as conn:
            return _affected(await conn.execute(_REVOKE_REFRESH_TOKENS_OF, revoked_ns, user_id))

    async def purge_refresh_tokens(self, before_ns: int) -> int:
        async with self._connection() as conn:
            return _affected(await conn.execute(_PURGE_REFRESH_TOKENS, before_ns, before_ns))


def _affected(status: str) -> int:
    """The rows a statement changed, from its command tag ("UPDATE 3")."""
    return int(status.rpartition(" ")[2])


async def _executemany(conn: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """executemany, skipping the round trip when a batch has none of these rows."""
    if rows:
        await conn.executemany(sql, rows)
