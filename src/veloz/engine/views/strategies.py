"""What the strategy routes answer: each strategy instance with its lifecycle, its own
position and PnL and its counts, and the catalogue of strategies that can be added with
their parameter schemas (for forms)."""

from decimal import Decimal
from typing import Any

import msgspec

from veloz.model.enums import StrategyState


class StrategyView(msgspec.Struct, frozen=True, kw_only=True):
    strategy_id: str
    strategy: str  # a built-in name or module:Class
    symbol: str
    params: dict[str, Any]
    state: StrategyState
    error: str | None  # why it stopped, when it stopped on an error
    position: Decimal  # its own, from the fills of its orders
    avg_price: Decimal | None
    realized_pnl: Decimal  # net of fees
    unrealized_pnl: Decimal  # at the latest mark; 0 without one
    open_orders: int
    orders: int  # placed since this engine started
    denied: int
    fills: int
    errors: int


class Strategies(msgspec.Struct, frozen=True, kw_only=True):
    strategies: list[StrategyView]


class StrategyKind(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    description: str
    params_schema: dict[str, Any]


class StrategyCatalog(msgspec.Struct, frozen=True, kw_only=True):
    strategies: list[StrategyKind]
