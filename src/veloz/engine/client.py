"""EngineClient: the one facade that REST, the streams, stdio and the CLI call, modelled on
freqtrade's rpc layer. Every method answers with a view Struct (`veloz.engine.views`) or
raises a `VelozError` with its `ErrorCode`; nothing behind it is reachable through it.

In a single-node deployment `veloz.runtime.client.LocalEngineClient` implements it on the
live engine in the same process; a remote implementation with the same methods can serve
gateway replicas. Reads are coroutines for that reason. `subscribe` and `events_since` are
plain calls: a stream attaches and reads its backlog with no await in between, so an
event is either in the backlog or delivered live, never lost between the two.
"""

from collections.abc import Callable
from typing import Protocol

from veloz.engine.bus import BusMessage
from veloz.engine.views.account import Account, AccountStatus, EquityHistory, Ping, Positions
from veloz.engine.views.admin import (
    CheckpointAnswer,
    LogLevelAnswer,
    ModeAnswer,
    ReloadAnswer,
)
from veloz.engine.views.audit import AuditLog
from veloz.engine.views.execution import Orphans
from veloz.engine.views.health import Health, Probe, Readiness
from veloz.engine.views.instruments import Instruments
from veloz.engine.views.market import Bars, Book, MarketState
from veloz.engine.views.orders import (
    OrderEvents,
    OrdersState,
    OrderView,
    Placement,
    Trades,
    WithHistory,
)
from veloz.engine.views.risk import LimitsInForce, RiskStatus
from veloz.engine.views.strategies import Strategies, StrategyCatalog, StrategyView
from veloz.engine.views.streams import Backlog
from veloz.model.commands import AddStrategy, CancelAllOrders, CancelOrder, SubmitOrder
from veloz.model.enums import ModeAction
from veloz.model.queries import AuditQuery, OrderQuery, TradeQuery


class EngineClient(Protocol):
    # -- orders: commands answer once what they decided is durable ----------------------

    async def submit_order(self, command: SubmitOrder) -> Placement: ...

    async def cancel_order(self, command: CancelOrder) -> OrderView:
        """The order, PENDING_CANCEL until the venue answers."""
        ...

    async def cancel_all(self, command: CancelAllOrders) -> list[OrderView]:
        """Every open order (of a symbol) asked to cancel; allowed in every trading mode."""
        ...

    async def order(self, client_order_id: str) -> OrderView:
        """Raises `not_found` for an order the engine does not hold."""
        ...

    async def order_history(self, query: OrderQuery) -> WithHistory[OrdersState]:
        """Orders newest first: the engine's, and final ones it no longer holds from the
        history store."""
        ...

    async def trade_history(self, query: TradeQuery) -> WithHistory[Trades]:
        """Fills newest first: the recent ones from memory, older ones from the store."""
        ...

    async def order_events(self, limit: int) -> OrderEvents:
        """Recent journaled order events, newest first."""
        ...

    # -- account ------------------------------------------------------------------------

    async def account(self) -> Account: ...

    async def positions(self) -> Positions: ...

    async def equity_history(self) -> EquityHistory:
        """The equity samples kept for the risk figures, oldest first."""
        ...

    async def account_status(self) -> AccountStatus: ...

    async def ping_venue(self) -> Ping:
        """A round trip to the venue; raises `venue_unreachable`."""
        ...

    async def orphans(self) -> Orphans:
        """What the newest reconciliation with the venue found that the journal lacks."""
        ...

    # -- market: an unknown symbol is `not_found` ---------------------------------------------

    async def symbols(self) -> list[str]:
        """The symbols traded, sorted."""
        ...

    async def instruments(self) -> Instruments:
        """The instruments traded, sorted by symbol, with the filters an order must meet."""
        ...

    async def market(self, symbol: str) -> MarketState: ...

    async def book(self, symbol: str, depth: int = 20) -> Book: ...

    async def bars(self, symbol: str, interval: str, limit: int) -> Bars: ...

    # -- risk -----------------------------------------------------------------------------

    async def risk_limits(self) -> LimitsInForce: ...

    async def risk_status(self) -> RiskStatus: ...

    # -- health -------------------------------------------------------------------------

    async def health(self) -> Health: ...

    async def liveness(self) -> Probe:
        """Whether the event loop turns (its timers fire in time)."""
        ...

    async def startup(self) -> Probe:
        """Whether journal replay and venue reconciliation have finished."""
        ...

    async def readiness(self, symbol: str) -> Readiness:
        """Ready to trade, judging market data by `symbol`'s quote."""
        ...

    # -- admin: `actor` is who asked, as the journal and the audit trail name them ------------

    async def set_mode(self, action: ModeAction, actor: str) -> ModeAnswer: ...

    async def reset_breaker(self, actor: str) -> ModeAnswer: ...

    async def set_log_level(self, level: str) -> LogLevelAnswer:
        """The engine's log level from now until it stops (`level`: a key of
        `observability.logs.LEVELS`); a gateway sets its own too, once the engine has."""
        ...

    async def reload_risk_limits(self, actor: str) -> ReloadAnswer:
        """Raises `bad_limits` for an invalid file; the limits in force stay."""
        ...

    async def checkpoint(self) -> CheckpointAnswer: ...

    async def audit_log(self, query: AuditQuery) -> AuditLog:
        """Raises `not_ready` without a history store, `store_unavailable` when it is down."""
        ...

    # -- strategies: an unknown id is `not_found` ----------------------------------------

    async def strategies(self) -> Strategies: ...

    async def strategy(self, strategy_id: str) -> StrategyView: ...

    async def strategy_catalog(self) -> StrategyCatalog:
        """The strategies that can be added, with their parameter schemas."""
        ...

    async def add_strategy(self, command: AddStrategy, actor: str) -> StrategyView:
        """Nothing is added if the strategy, the symbol, the id or a parameter is wrong."""
        ...

    async def change_strategy(self, strategy_id: str, action: str, actor: str) -> StrategyView:
        """`start`, `pause`, `resume`, `stop` or `remove`; answered once journaled."""
        ...

    # -- streams --------------------------------------------------------------------------

    def subscribe(self, handler: Callable[[BusMessage], None]) -> Callable[[], None]:
        """Call `handler` with every bus message from now on; returns the unsubscribe."""
        ...

    def events_since(self, seq: int) -> Backlog:
        """The journaled events after `seq`, for a stream resuming from it."""
        ...
