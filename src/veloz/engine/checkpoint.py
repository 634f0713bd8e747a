"""The engine state written into a journal `Checkpoint` entry."""

import msgspec

from veloz.model.enums import TradingMode
from veloz.model.events import StrategyChanged
from veloz.model.orders import Order
from veloz.portfolio.portfolio import PortfolioState
from veloz.portfolio.positions import Position

CHECKPOINT_VERSION = 1


class EngineCheckpoint(msgspec.Struct, kw_only=True):
    version: int = CHECKPOINT_VERSION
    ts_ns: int
    orders: list[Order]
    portfolio: PortfolioState
    mode: TradingMode
    mode_reason: str
    generated_ids: int
    balances_seeded: bool
    # Added after version 1 with defaults, so older checkpoints still read: the newest
    # change of every strategy not removed, and each strategy's own position.
    strategies: list[StrategyChanged] = msgspec.field(default_factory=list)
    strategy_positions: dict[str, Position] = msgspec.field(default_factory=dict)
