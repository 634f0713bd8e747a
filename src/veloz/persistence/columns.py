"""Rows as column tuples and back, shared by both dialects. Each store passes how it
writes a decimal and a time (SQLite: text; PostgreSQL: NUMERIC and TIMESTAMPTZ)."""

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import msgspec

from veloz.model.enums import (
    LiquiditySide,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
    TradingMode,
)
from veloz.model.events import OrderFilled
from veloz.model.orders import Order
from veloz.persistence.store import (
    ApiKeyRecord,
    AuditRecord,
    FillRow,
    ModeChangeRow,
    OrderRow,
    PortfolioSnapshot,
    RefreshTokenRecord,
    UserRecord,
)

ORDER_COLUMNS = (
    "client_order_id",
    "venue_order_id",
    "symbol",
    "side",
    "type",
    "tif",
    "qty",
    "price",
    "status",
    "executed_qty",
    "cum_quote",
    "avg_price",
    "fee",
    "fee_asset",
    "reason",
    "strategy_id",
    "reference_price",
    "created_at",
    "updated_at",
    "created_ns",
    "updated_ns",
    "journal_seq",
)
FILL_COLUMNS = (
    "trade_id",
    "client_order_id",
    "symbol",
    "side",
    "qty",
    "price",
    "fee",
    "fee_asset",
    "liquidity",
    "ts",
    "ts_ns",
    "journal_seq",
)
MODE_COLUMNS = ("journal_seq", "ts", "ts_ns", "mode", "reason", "actor")
AUDIT_COLUMNS = (
    "ts",
    "ts_ns",
    "actor",
    "action",
    "target",
    "params",
    "result",
    "client_ip",
    "request_id",
)

EQUITY_COLUMNS = ("ts", "ts_ns", "equity", "drawdown")
POSITION_COLUMNS = (
    "ts",
    "ts_ns",
    "symbol",
    "qty",
    "avg_price",
    "mark_price",
    "unrealized_pnl",
    "realized_pnl",
    "fees",
)
BALANCE_COLUMNS = ("ts", "ts_ns", "asset", "free", "locked")

USER_COLUMNS = (
    "user_id",
    "role",
    "password_hash",
    "disabled",
    "created_at",
    "updated_at",
    "created_ns",
    "updated_ns",
)
API_KEY_COLUMNS = (
    "key_id",
    "name",
    "role",
    "key_hash",
    "created_at",
    "created_ns",
    "last_used_ns",
    "expires_ns",
    "allowed_ips",
    "revoked_ns",
)
REFRESH_TOKEN_COLUMNS = ("token_hash", "user_id", "issued_ns", "expires_ns", "revoked_ns")

DecimalOut = Callable[[Decimal], Any]
TimeOut = Callable[[int], Any]


def _clean(text: str) -> str:
    """PostgreSQL TEXT refuses NUL, and one such reason from a venue would block the
    projection for good: it is stored as U+FFFD instead, in both dialects alike."""
    return text.replace("\x00", "\ufffd")


def _clean_opt(text: str | None) -> str | None:
    return None if text is None else _clean(text)


def _opt(value: Decimal | None, dec: DecimalOut) -> Any:
    return None if value is None else dec(value)


def order_values(row: OrderRow, dec: DecimalOut, time: TimeOut) -> tuple[Any, ...]:
    order = row.order
    return (
        order.client_order_id,
        _clean_opt(order.venue_order_id),
        order.symbol,
        order.side.value,
        order.order_type.value,
        order.time_in_force.value,
        dec(order.order_qty),
        _opt(order.limit_price, dec),
        order.status.value,
        dec(order.executed_qty),
        dec(order.cum_quote),
        _opt(order.avg_price, dec),
        dec(order.fee),
        _clean_opt(order.fee_asset),
        _clean(order.reason),
        _clean_opt(order.strategy_id),
        _opt(order.reference_price, dec),
        time(order.created_ts_ns),
        time(order.last_ts_ns),
        order.created_ts_ns,
        order.last_ts_ns,
        row.journal_seq,
    )


def fill_values(row: FillRow, dec: DecimalOut, time: TimeOut) -> tuple[Any, ...]:
    fill = row.fill
    return (
        fill.trade_id,
        fill.client_order_id,
        fill.symbol,
        fill.side.value,
        dec(fill.qty),
        dec(fill.price),
        dec(fill.fee),
        fill.fee_asset,
        fill.liquidity.value,
        time(fill.ts_ns),
        fill.ts_ns,
        row.journal_seq,
    )


def mode_values(row: ModeChangeRow, time: TimeOut) -> tuple[Any, ...]:
    return (
        row.journal_seq,
        time(row.ts_ns),
        row.ts_ns,
        row.mode.value,
        _clean(row.reason),
        _clean(row.actor),
    )


def audit_values(record: AuditRecord, time: TimeOut) -> tuple[Any, ...]:
    # msgspec writes NaN/Infinity as null (JSONB refuses them) and anything unknown as text.
    params = msgspec.json.encode(record.params, enc_hook=str).decode()
    return (
        time(record.ts_ns),
        record.ts_ns,
        _clean(record.actor),
        _clean(record.action),
        _clean(record.target),
        params.replace("\\u0000", "\\ufffd"),
        _clean(record.result),
        _clean(record.client_ip),
        _clean(record.request_id),
    )


def snapshot_values(
    snapshot: PortfolioSnapshot, dec: DecimalOut, time: TimeOut
) -> tuple[tuple[Any, ...], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(the equity row, the position rows, the balance rows) of one snapshot."""
    ts, ns = time(snapshot.ts_ns), snapshot.ts_ns
    equity = (ts, ns, dec(snapshot.equity), dec(snapshot.drawdown))
    positions = [
        (
            ts,
            ns,
            p.symbol,
            dec(p.qty),
            _opt(p.avg_price, dec),
            _opt(p.mark_price, dec),
            dec(p.unrealized_pnl),
            dec(p.realized_pnl),
            dec(p.fees),
        )
        for p in snapshot.positions
    ]
    balances = [(ts, ns, b.asset, dec(b.free), dec(b.locked)) for b in snapshot.balances]
    return equity, positions, balances


def user_values(user: UserRecord, time: TimeOut) -> tuple[Any, ...]:
    return (
        user.user_id,
        user.role,
        user.password_hash,
        user.disabled,  # SQLite stores a bool as 0 or 1, PostgreSQL as BOOLEAN
        time(user.created_ns),
        time(user.updated_ns),
        user.created_ns,
        user.updated_ns,
    )


def api_key_values(key: ApiKeyRecord, time: TimeOut) -> tuple[Any, ...]:
    return (
        key.key_id,
        _clean(key.name),  # a label, free text (ids and hashes are kept exactly)
        key.role,
        key.key_hash,
        time(key.created_ns),
        key.created_ns,
        key.last_used_ns,
        key.expires_ns,
        # JSON text in both dialects: one encoding, one decoding, and nothing queries it.
        msgspec.json.encode(key.allowed_ips).decode(),
        key.revoked_ns,
    )


def refresh_token_values(token: RefreshTokenRecord) -> tuple[Any, ...]:
    return (token.token_hash, token.user_id, token.issued_ns, token.expires_ns, token.revoked_ns)


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(value)


def _opt_dec(value: Any) -> Decimal | None:
    return None if value is None else _dec(value)


def order_of(r: Mapping[str, Any], trade_ids: list[str] | None = None) -> Order:
    """The order a row of ORDER_COLUMNS holds (the store's column names are its own)."""
    return Order(
        client_order_id=r["client_order_id"],
        venue_order_id=r["venue_order_id"],
        symbol=r["symbol"],
        side=OrderSide(r["side"]),
        order_type=OrderType(r["type"]),
        time_in_force=TimeInForce(r["tif"]),
        order_qty=_dec(r["qty"]),
        limit_price=_opt_dec(r["price"]),
        status=OrderStatus(r["status"]),
        executed_qty=_dec(r["executed_qty"]),
        cum_quote=_dec(r["cum_quote"]),
        avg_price=_opt_dec(r["avg_price"]),
        fee=_dec(r["fee"]),
        fee_asset=r["fee_asset"],
        reason=r["reason"],
        strategy_id=r["strategy_id"],
        reference_price=_opt_dec(r["reference_price"]),
        created_ts_ns=r["created_ns"],
        last_ts_ns=r["updated_ns"],
        trade_ids=trade_ids or [],
    )


def fill_of(r: Mapping[str, Any]) -> OrderFilled:
    """The fill a row of FILL_COLUMNS holds."""
    return OrderFilled(
        trade_id=r["trade_id"],
        client_order_id=r["client_order_id"],
        symbol=r["symbol"],
        side=OrderSide(r["side"]),
        qty=_dec(r["qty"]),
        price=_dec(r["price"]),
        fee=_dec(r["fee"]),
        fee_asset=r["fee_asset"],
        liquidity=LiquiditySide(r["liquidity"]),
        ts_ns=r["ts_ns"],
    )


def mode_row(r: Mapping[str, Any]) -> ModeChangeRow:
    return ModeChangeRow(
        journal_seq=r["journal_seq"],
        ts_ns=r["ts_ns"],
        mode=TradingMode(r["mode"]),
        reason=r["reason"],
        actor=r["actor"],
    )


def audit_record(r: Mapping[str, Any], params: dict[str, Any]) -> AuditRecord:
    return AuditRecord(
        ts_ns=r["ts_ns"],
        actor=r["actor"],
        action=r["action"],
        target=r["target"],
        params=params,
        result=r["result"],
        client_ip=r["client_ip"],
        request_id=r["request_id"],
    )


def user_record(r: Mapping[str, Any]) -> UserRecord:
    return UserRecord(
        user_id=r["user_id"],
        role=r["role"],
        password_hash=r["password_hash"],
        disabled=bool(r["disabled"]),
        created_ns=r["created_ns"],
        updated_ns=r["updated_ns"],
    )


def api_key_record(r: Mapping[str, Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=r["key_id"],
        name=r["name"],
        role=r["role"],
        key_hash=r["key_hash"],
        created_ns=r["created_ns"],
        last_used_ns=r["last_used_ns"],
        expires_ns=r["expires_ns"],
        allowed_ips=msgspec.json.decode(r["allowed_ips"], type=list[str]),
        revoked_ns=r["revoked_ns"],
    )


def refresh_token_record(r: Mapping[str, Any]) -> RefreshTokenRecord:
    return RefreshTokenRecord(
        token_hash=r["token_hash"],
        user_id=r["user_id"],
        issued_ns=r["issued_ns"],
        expires_ns=r["expires_ns"],
        revoked_ns=r["revoked_ns"],
    )
