"""The store's contract: the rows it keeps, the questions it answers, and the
`HistoryStore` and `CredentialStore` protocols that the SQLite and PostgreSQL stores both
implement (and one contract test suite per protocol checks).

The journal is the source of truth. Orders, fills and mode changes in the store are a
projection of it, written behind by the projector and keyed by journal sequence so that
replaying an entry twice changes nothing. Portfolio snapshots, equity samples and the audit
trail are not journal facts: they are written straight to the store.
"""

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Protocol

import msgspec

from veloz.model.enums import TradingMode
from veloz.model.events import OrderFilled
from veloz.model.orders import Order
from veloz.model.queries import AuditQuery, OrderQuery, TradeQuery


class StoreUnavailable(Exception):
    """The database cannot be reached or refused a statement. The message never holds the
    connection URL's password."""


class OrderRow(msgspec.Struct, frozen=True):
    """An order as the store keeps it: its latest state, a copy taken when the row was
    built (the live order moves on), and the journal entry that made it."""

    journal_seq: int
    order: Order

    @classmethod
    def of(cls, order: Order, journal_seq: int) -> "OrderRow":
        return cls(journal_seq, msgspec.structs.replace(order))


class FillRow(msgspec.Struct, frozen=True):
    """A fill and the journal entry that recorded it."""

    journal_seq: int
    fill: OrderFilled


class ModeChangeRow(msgspec.Struct, kw_only=True):
    journal_seq: int
    ts_ns: int
    mode: TradingMode
    reason: str
    actor: str


class ProjectionBatch(msgspec.Struct, kw_only=True):
    """What the projector writes in one transaction. `last_seq` becomes the high-water
    mark in that same transaction, so a batch is either wholly there or not at all."""

    last_seq: int
    orders: list[OrderRow] = msgspec.field(default_factory=list)
    fills: list[FillRow] = msgspec.field(default_factory=list)
    mode_changes: list[ModeChangeRow] = msgspec.field(default_factory=list)


class PositionSnapshot(msgspec.Struct, kw_only=True):
    symbol: str
    qty: Decimal
    avg_price: Decimal | None
    mark_price: Decimal | None
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    fees: Decimal


class BalanceSnapshot(msgspec.Struct, kw_only=True):
    asset: str
    free: Decimal
    locked: Decimal


class PortfolioSnapshot(msgspec.Struct, kw_only=True):
    """Positions, balances and equity at one moment (sampled: marks are not journaled)."""

    ts_ns: int
    equity: Decimal
    drawdown: Decimal
    positions: list[PositionSnapshot]
    balances: list[BalanceSnapshot]


class AuditRecord(msgspec.Struct, kw_only=True):
    """Who did what, with which parameters (secrets removed before this is built) and
    what came of it."""

    ts_ns: int
    actor: str
    action: str
    target: str = ""
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    result: str = ""
    client_ip: str = ""
    request_id: str = ""


class MigrationStatus(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    name: str
    applied_ns: int | None  # None: not applied yet


class UserRecord(msgspec.Struct, kw_only=True):
    """A person who logs in. `password_hash` is a self-describing KDF string (never the
    password); `role` is viewer, trader or admin."""

    user_id: str
    role: str
    password_hash: str
    disabled: bool = False
    created_ns: int
    updated_ns: int


class ApiKeyRecord(msgspec.Struct, kw_only=True):
    """An API key as stored: only the SHA-256 of the secret, never the secret itself."""

    key_id: str
    name: str
    role: str
    key_hash: str
    created_ns: int
    last_used_ns: int | None = None
    expires_ns: int | None = None
    allowed_ips: list[str] = msgspec.field(default_factory=list)  # CIDRs; empty: any
    revoked_ns: int | None = None


class RefreshTokenRecord(msgspec.Struct, kw_only=True):
    """A refresh token as stored: its SHA-256, whose it is, and whether it still counts."""

    token_hash: str
    user_id: str
    issued_ns: int
    expires_ns: int
    revoked_ns: int | None = None


PROJECTED_TABLES = ("orders", "fills", "mode_changes")
SAMPLED_TABLES = ("positions", "balances", "equity", "audit_log")


class HistoryStore(Protocol):
    """Every method raises StoreUnavailable when the database cannot answer."""

    @property
    def name(self) -> str:
        """The dialect and where it is, password removed (for logs, health and the CLI)."""
        ...

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def migrate(self) -> list[MigrationStatus]:
        """Apply the migrations not applied yet, each in its own transaction; return them."""
        ...

    async def migrations(self) -> list[MigrationStatus]:
        """Every known migration and whether (when) it was applied."""
        ...

    async def high_water(self) -> int:
        """The last journal sequence the projection holds (0 for none)."""
        ...

    async def apply(self, batch: ProjectionBatch) -> None:
        """Write one batch and its high-water mark in one transaction. Rows from entries at
        or below the stored high-water mark change nothing (idempotent replay)."""
        ...

    async def reset_projection(self) -> None:
        """Empty the projected tables and the high-water mark (before a rebuild); samples
        and the audit trail are kept."""
        ...

    async def open_orders(self) -> list[Order]:
        """Orders not in a final status, with their trade ids (the projector resumes
        from these)."""
        ...

    async def orders(self, query: OrderQuery) -> list[Order]: ...

    async def trades(self, query: TradeQuery) -> list[OrderFilled]: ...

    async def record_snapshot(self, snapshot: PortfolioSnapshot) -> None: ...

    async def record_audits(self, records: Sequence[AuditRecord]) -> None:
        """Append audit records, all in one transaction (one per request under load)."""
        ...

    async def audit_log(self, query: AuditQuery) -> list[AuditRecord]: ...

    async def table_counts(self) -> dict[str, int]:
        """Rows per table (for `veloz db status` and the tests)."""
        ...


class CredentialStore(Protocol):
    """Users, API keys and refresh tokens (the security milestone's tables, migration
    0002). Both stores implement it beside HistoryStore; every method raises
    StoreUnavailable when the database cannot answer."""

    async def save_user(self, user: UserRecord) -> None:
        """Insert the user or replace every field of the existing one."""
        ...

    async def add_user(self, user: UserRecord) -> bool:
        """Insert a new user; False (and nothing changed) if the id exists already."""
        ...

    async def user(self, user_id: str) -> UserRecord | None: ...

    async def users(self) -> list[UserRecord]:
        """Every user, by user id."""
        ...

    async def add_api_key(self, key: ApiKeyRecord) -> None:
        """Insert a new key (a key id that exists already is an error)."""
        ...

    async def api_keys(self) -> list[ApiKeyRecord]:
        """Every key, revoked and expired ones included, oldest first."""
        ...

    async def revoke_api_key(self, key_id: str, revoked_ns: int) -> bool:
        """Mark the key revoked; False if there is no such key or it was revoked already."""
        ...

    async def touch_api_keys(self, last_used: dict[str, int]) -> None:
        """Record when keys were last used (key id -> ts_ns; never moves backwards)."""
        ...

    async def add_refresh_token(self, token: RefreshTokenRecord) -> None: ...

    async def refresh_token(self, token_hash: str) -> RefreshTokenRecord | None: ...

    async def revoke_refresh_token(self, token_hash: str, revoked_ns: int) -> bool:
        """Mark it revoked; False if unknown or already revoked (so a token is used once)."""
        ...

    async def revoke_refresh_tokens_of(self, user_id: str, revoked_ns: int) -> int:
        """Revoke every live refresh token of a user (password change, disable); how many."""
        ...

    async def purge_refresh_tokens(self, before_ns: int) -> int:
        """Delete tokens that expired or were revoked before `before_ns`; how many. (A
        purged token is refused as unknown, as it was refused as revoked.)"""
        ...


class Store(HistoryStore, CredentialStore, Protocol):
    """What a VELOZ_DATABASE_URL opens: the history and the credentials, one database."""
