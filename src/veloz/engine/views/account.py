"""The account as every transport shows it: balances, positions with equity, the
account summary stdio's STATUS prints, and the venue's reachability."""

from decimal import Decimal

import msgspec

from veloz.model.account import Balance, PositionView
from veloz.model.enums import TradingMode


class Account(msgspec.Struct, frozen=True, kw_only=True):
    ts_ns: int
    balances: list[Balance]


class Positions(msgspec.Struct, frozen=True, kw_only=True):
    count: int
    positions: list[PositionView]
    equity: Decimal
    drawdown: Decimal
    leverage: Decimal


class AccountStatus(msgspec.Struct, frozen=True, kw_only=True):
    ts_ns: int
    mode: TradingMode
    mode_reason: str
    balances: list[Balance]
    positions: list[PositionView]
    open_orders: int
    orders: int
    equity: Decimal


class Ping(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    venue: str
    latency_ms: float
