"""EngineClient: the one facade that REST, the streams, stdio and the CLI call. In a
single-node deployment it talks to the LiveEngine in process; a remote implementation with the
same methods will serve gateway replicas."""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from veloz.engine.bus import BusMessage
from veloz.model.account import Balance, PositionView
from veloz.model.commands import CancelOrder, SubmitOrder
from veloz.model.enums import FINAL_STATUSES, OPEN_STATUSES, OrderStatus, TradingMode
from veloz.model.errors import CommandRejected
from veloz.model.events import OrderFilled
from veloz.model.orders import Order
from veloz.persistence.store import OrderQuery, StoreUnavailable, TradeQuery
from veloz.runtime.live import LiveEngine, OrderAck

if TYPE_CHECKING:
    from veloz.persistence.service import HistoryService


class AccountStatus(msgspec.Struct, frozen=True, kw_only=True):
    ts_ns: int
    mode: TradingMode
    mode_reason: str
    balances: list[Balance]
    positions: list[PositionView]
    open_orders: int
    orders: int
    equity: str


def parse_status_filter(value: str | None) -> frozenset[OrderStatus] | None:
    """`open`, `final` or one status name (case-insensitive); None means every status."""
    if value is None or value == "":
        return None
    lowered = value.lower()
    if lowered == "open":
        return OPEN_STATUSES
    if lowered == "final":
        return FINAL_STATUSES
    try:
        return frozenset({OrderStatus(value.upper())})
    except ValueError:
        allowed = "open|final|" + "|".join(OrderStatus)
        raise CommandRejected(f"status must be one of {allowed}") from None


class History(msgspec.Struct, frozen=True):
    """Orders or fills read from memory and the history store together. `complete` is
    False when the store could not be asked: only what memory holds is there."""

    items: list[Any]
    complete: bool


class EngineClient:
    def __init__(self, engine: LiveEngine, history: "HistoryService | None" = None) -> None:
        self._engine = engine
        self.history = history

    async def submit_order(self, command: SubmitOrder) -> OrderAck:
        return await self._engine.submit(command)

    async def cancel_order(self, command: CancelOrder) -> OrderAck:
        return await self._engine.cancel(command)

    async def cancel_all(self, symbol: str | None = None) -> list[OrderAck]:
        return await self._engine.cancel_all(symbol)

    def order(self, client_order_id: str) -> Order | None:
        return self._engine.oms.get(client_order_id)

    def orders(
        self,
        statuses: frozenset[OrderStatus] | None = None,
        symbol: str | None = None,
        limit: int | None = None,
        before_ts_ns: int | None = None,
    ) -> list[Order]:
        """Orders newest first, optionally filtered by status set, symbol and creation
        time (`before_ts_ns` pages backwards)."""
        oms = self._engine.oms
        found = oms.all_orders() if statuses is None else oms.with_status(statuses)
        if symbol is not None:
            found = [o for o in found if o.symbol == symbol]
        if before_ts_ns is not None:
            found = [o for o in found if o.created_ts_ns < before_ts_ns]
        found.sort(key=lambda o: (o.created_ts_ns, o.client_order_id), reverse=True)
        return found[:limit] if limit is not None else found

    async def order_history(
        self,
        statuses: frozenset[OrderStatus] | None = None,
        symbol: str | None = None,
        limit: int | None = None,
        before_ts_ns: int | None = None,
    ) -> History:
        """Like `orders`, with final orders the engine no longer holds taken from the
        history store. Memory wins for every order it holds: it is never behind the store,
        and it holds every open order, so a stored row still open elsewhere is stale."""
        live = self.orders(statuses, symbol, limit, before_ts_ns)
        if self.history is None or (statuses is not None and statuses <= OPEN_STATUSES):
            return History(live, True)
        query = OrderQuery(statuses=statuses, symbol=symbol, limit=limit, before_ns=before_ts_ns)
        try:
            stored = await self.history.store.orders(query)
        except StoreUnavailable:
            return History(live, False)
        oms = self._engine.oms
        merged = {
            o.client_order_id: o
            for o in stored
            if o.is_final and oms.get(o.client_order_id) is None
        }
        merged.update((o.client_order_id, o) for o in live)
        found = sorted(
            merged.values(), key=lambda o: (o.created_ts_ns, o.client_order_id), reverse=True
        )
        return History(found[:limit] if limit is not None else found, True)

    async def trade_history(
        self, limit: int, symbol: str | None = None, before_ts_ns: int | None = None
    ) -> History:
        """Fills newest first: the recent ones from memory, older ones from the store."""
        recent = [
            f
            for f in self._engine.activity.recent_fills(self._engine.config.activity_fills)
            if (symbol is None or f.symbol == symbol)
            and (before_ts_ns is None or f.ts_ns < before_ts_ns)
        ]
        complete = True
        stored: list[OrderFilled] = []
        if self.history is not None:
            try:
                stored = await self.history.store.trades(
                    TradeQuery(symbol=symbol, limit=limit, before_ns=before_ts_ns)
                )
            except StoreUnavailable:
                complete = False
        merged = {f.trade_id: f for f in stored} | {f.trade_id: f for f in recent}
        found = sorted(merged.values(), key=lambda f: (f.ts_ns, f.trade_id), reverse=True)
        return History(found[:limit], complete)

    def balances(self) -> list[Balance]:
        return self._engine.portfolio.balances()

    def positions(self) -> list[PositionView]:
        return self._engine.portfolio.positions()

    def account(self) -> AccountStatus:
        engine = self._engine
        return AccountStatus(
            ts_ns=engine.clock.time_ns(),
            mode=engine.mode,
            mode_reason=engine.mode_reason,
            balances=self.balances(),
            positions=self.positions(),
            open_orders=engine.oms.open_count(),
            orders=len(engine.oms),
            equity=str(engine.portfolio.equity()),
        )

    def subscribe(self, handler: Callable[[BusMessage], None]) -> Callable[[], None]:
        return self._engine.bus.subscribe(handler)

    async def admin_mode(self, action: str, actor: str) -> tuple[TradingMode, bool]:
        return await self._engine.admin_mode(action, actor)

    async def checkpoint(self) -> int:
        return await self._engine.write_checkpoint()

    @property
    def engine(self) -> LiveEngine:
        """For health and metrics views that read component state directly."""
        return self._engine
