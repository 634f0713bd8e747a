"""Enumerations with their wire spelling: the values are what JSON, the journal and the
API carry."""

from enum import StrEnum


class OrderSide(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def opposite(self) -> "OrderSide":
        return OrderSide.SELL if self is OrderSide.BUY else OrderSide.BUY


class OrderType(StrEnum):
    LIMIT = "LIMIT"
    MARKET = "MARKET"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(StrEnum):
    PENDING_NEW = "PENDING_NEW"
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)
OPEN_STATUSES = frozenset(set(OrderStatus) - FINAL_STATUSES)


class LiquiditySide(StrEnum):
    MAKER = "MAKER"
    TAKER = "TAKER"


class TradingMode(StrEnum):
    """Whether the engine takes new orders. Cancels are allowed in every mode."""

    ACTIVE = "ACTIVE"
    READONLY = "READONLY"
    MAINTENANCE = "MAINTENANCE"
    HALTED = "HALTED"


class EnginePhase(StrEnum):
    """Where a live engine is in its life: replay and reconciliation come before `ready`,
    the only phase that takes orders."""

    CREATED = "created"
    REPLAYING = "replaying"
    RECONCILING = "reconciling"
    READY = "ready"
    STOPPING = "stopping"
    STOPPED = "stopped"


class StrategyState(StrEnum):
    """Where a strategy instance is in its lifecycle; journaled, so a restart resumes it."""

    ADDED = "added"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    REMOVED = "removed"


class ModeAction(StrEnum):
    """An operator's mode command (`POST /api/admin/<action>`)."""

    MAINTENANCE = "maintenance"
    READY = "ready"
    READONLY = "readonly"
    READWRITE = "readwrite"
