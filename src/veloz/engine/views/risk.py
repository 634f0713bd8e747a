"""Risk as the routes show it: the limits in force and where they came from, and the
risk state (trading mode, breaker, utilisation of each limit, denials by reason, equity,
drawdown, VaR, leverage and concentration)."""

from decimal import Decimal

import msgspec

from veloz.model.enums import TradingMode
from veloz.risk.limits import RiskLimits


class LimitsInForce(msgspec.Struct, frozen=True, kw_only=True):
    limits: RiskLimits
    source: str | None
    loaded_at_ns: int
    sha256: str | None
    order_rate_limit: float | None


class SymbolUtilisation(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    position_qty: Decimal
    open_buy_qty: Decimal
    open_sell_qty: Decimal
    open_orders: int
    max_position_qty: Decimal | None
    max_open_orders: int | None


class BreakerState(msgspec.Struct, frozen=True, kw_only=True):
    tripped: bool
    reason: str
    until_ns: int | None
    trips: int


class RiskStatus(msgspec.Struct, frozen=True, kw_only=True):
    mode: TradingMode
    mode_reason: str
    breaker: BreakerState
    open_orders: int
    max_open_orders: int | None
    symbols: list[SymbolUtilisation]
    denials: dict[str, int]
    equity: Decimal
    peak_equity: Decimal
    drawdown: Decimal
    var_95: float
    var_99: float
    equity_samples: int
    gross_leverage: Decimal
    net_leverage: Decimal
    largest_position_share: Decimal
    concentration_hhi: Decimal
