"""The Strategy API: what a strategy implements (callbacks), what it is given (a
`StrategyContext` to place and cancel orders and read its own position) and how its
parameters are declared (a `StrategyParams` Struct: types, defaults, bounds and
descriptions, whose JSON schema the API serves for forms).

A strategy never touches the journal or a venue: its orders go through the same risk and
order path as everyone else's, tagged with its id, and it hears of them through
`on_order_update` and `on_fill` once they are recorded.
"""

from decimal import Decimal
from typing import ClassVar, Protocol

import msgspec

from veloz.model.enums import OrderSide, TimeInForce
from veloz.model.events import OrderFilled
from veloz.model.market import PriceBar, QuoteTick, TradeTick
from veloz.model.orders import Order

# msgspec bounds only numbers it knows as numbers; decimals are bounded by the checks below
# and shown bounded in the schema with these.
POSITIVE = {"exclusiveMinimum": 0}
NON_NEGATIVE = {"minimum": 0}


def require_positive(**values: Decimal) -> None:
    for name, value in values.items():
        if not value.is_finite() or value <= 0:
            raise ValueError(f"{name} must be a finite number greater than 0, got {value}")


def require_non_negative(**values: Decimal) -> None:
    for name, value in values.items():
        if not value.is_finite() or value < 0:
            raise ValueError(f"{name} must be a finite number of at least 0, got {value}")


class StrategyParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every strategy's parameters. Subclasses declare fields with
    `Annotated[type, msgspec.Meta(ge=..., le=..., description=...)]` and defaults."""


class StrategyContext(Protocol):
    """What a running strategy may do and know. Orders it places carry its strategy id."""

    strategy_id: str
    symbol: str

    def time_ns(self) -> int: ...

    def set_timer(self, interval_ns: int | None) -> None:
        """Call `on_timer` every `interval_ns` of market time from now (None: no timer).
        Timers fire as market data arrives (a bar in a backtest, a quote live)."""
        ...

    def buy_market(self, qty: Decimal) -> Order | None:
        """Place a MARKET order; None if risk or the engine refused it (logged, counted)."""
        ...

    def sell_market(self, qty: Decimal) -> Order | None: ...

    def submit_limit(
        self, side: OrderSide, qty: Decimal, price: Decimal, tif: TimeInForce = TimeInForce.GTC
    ) -> Order | None: ...

    def cancel(self, client_order_id: str) -> None: ...

    def position(self) -> Decimal:
        """This strategy's own net position in its symbol, from its fills."""
        ...

    def open_orders(self) -> list[Order]:
        """This strategy's orders that are not final yet."""
        ...

    def price_increment(self) -> Decimal: ...

    def size_increment(self) -> Decimal: ...


class Strategy:
    """Base class. Subclasses set `name`, `description` and `Params`, and override the
    callbacks they need; every callback runs synchronously on the engine's thread, so it
    must be quick. An exception stops this strategy (and cancels its orders), nothing
    else."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Params: ClassVar[type[StrategyParams]] = StrategyParams

    def __init__(self, params: StrategyParams, ctx: StrategyContext) -> None:
        self.params = params
        self.ctx = ctx

    def on_start(self) -> None:
        """Called when the strategy starts (or resumes after a restart)."""

    def on_bar(self, bar: PriceBar) -> None:
        """A closed bar of the strategy's symbol."""

    def on_quote(self, quote: QuoteTick) -> None:
        """The top of the book of the strategy's symbol moved."""

    def on_trade(self, trade: TradeTick) -> None:
        """A public trade in the strategy's symbol."""

    def on_order_update(self, order: Order) -> None:
        """One of this strategy's orders changed (accepted, cancelled, filled...)."""

    def on_fill(self, fill: OrderFilled) -> None:
        """One of this strategy's orders traded; `on_order_update` follows."""

    def on_timer(self, ts_ns: int) -> None:
        """The timer the strategy set (`ctx.set_timer`) fired."""

    def on_stop(self) -> None:
        """Called when the strategy stops; its open orders are cancelled after it."""
