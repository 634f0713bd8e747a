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


class EquityPoint(msgspec.Struct, frozen=True, kw_only=True):
    ts_ns: int
    equity: Decimal
    # Fraction lost from the highest equity sampled up to this point.
    drawdown: Decimal


class EquityHistory(msgspec.Struct, frozen=True, kw_only=True):
    """The equity samples the engine keeps for its risk figures (VaR): one at most every
    `interval_s`, the newest day of them, since this process started."""

    interval_s: float
    count: int
    points: list[EquityPoint]

    @classmethod
    def of(cls, samples: list[tuple[int, Decimal]], interval_s: float) -> "EquityHistory":
        points: list[EquityPoint] = []
        peak: Decimal | None = None
        for ts_ns, equity in samples:
            peak = equity if peak is None or equity > peak else peak
            drawdown = (peak - equity) / peak if peak > 0 else Decimal(0)
            points.append(EquityPoint(ts_ns=ts_ns, equity=equity, drawdown=drawdown))
        return cls(interval_s=interval_s, count=len(points), points=points)


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
