"""The engine state written into a journal `Checkpoint` entry."""

import msgspec

from veloz.model.enums import TradingMode
from veloz.model.orders import Order
from veloz.portfolio.portfolio import PortfolioState

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
