"""What the engine has been told about each Binance order, so that it is told once.

The same fact reaches the venue several ways: a fill is in the new-order answer and in the
user data stream; a cancel is in the cancel answer and in the stream; after a gap, polling
and queries repeat what the stream may also deliver. The ledger turns every `OrderUpdate`,
whatever carried it, into the reports not yet made, in the order the model needs them:
accepted once, each trade id once, the final state once and only after every fill that
precedes it. An update whose cumulative executed quantity is ahead of the fills seen says
fills are missing: `Applied.missing_fills` asks the caller to fetch the order's trades and
apply the update again with them, before anything final is reported.

Only orders the venue tracks get reports: ones submitted through it, restored from the
journal, or looked up for the engine. Others (placed by hand, by another program) are
orphans for reconciliation to find, not reports.
"""

from collections import deque
from decimal import Decimal

import msgspec

from veloz.execution.venues.binance_reports import OrderUpdate
from veloz.model.enums import OrderSide, OrderStatus
from veloz.model.events import (
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderRejected,
    OrderReport,
)
from veloz.model.orders import Order

_ZERO = Decimal(0)
# Final orders remembered so that late copies of their reports are recognised; beyond
# this the oldest are forgotten.
KEEP_FINAL = 100_000


class Applied(msgspec.Struct, frozen=True):
    reports: list[OrderReport]
    # The update counts more executed quantity than the fills seen so far.
    missing_fills: bool = False


class _Entry:
    __slots__ = ("executed", "final", "side", "status", "symbol", "trade_ids", "venue_order_id")

    def __init__(self, symbol: str, side: OrderSide | None) -> None:
        self.symbol = symbol
        self.side = side
        self.venue_order_id: str | None = None
        self.trade_ids: set[str] = set()
        self.executed = _ZERO
        self.final = False
        # The newest status Binance gave (None until it gave one).
        self.status: OrderStatus | None = None


class ReportLedger:
    def __init__(self, keep_final: int = KEEP_FINAL) -> None:
        self._orders: dict[str, _Entry] = {}
        self._finished: deque[str] = deque()
        self._keep_final = keep_final

    # -- which orders --------------------------------------------------------------------

    def track(self, client_order_id: str, symbol: str, side: OrderSide | None) -> None:
        """Report on this order from now on (nothing said about it yet)."""
        if client_order_id not in self._orders:
            self._orders[client_order_id] = _Entry(symbol, side)

    def seed(self, order: Order) -> None:
        """An order the journal already knows in this state (after a restart)."""
        entry = _Entry(order.symbol, order.side)
        entry.venue_order_id = order.venue_order_id
        entry.trade_ids = set(order.trade_ids)
        entry.executed = order.executed_qty
        entry.status = order.status
        self._orders[order.client_order_id] = entry
        if order.is_final:
            self._finish(order.client_order_id, entry)

    def knows(self, client_order_id: str) -> bool:
        return client_order_id in self._orders

    def is_final(self, client_order_id: str) -> bool:
        entry = self._orders.get(client_order_id)
        return entry is not None and entry.final

    def status(self, client_order_id: str) -> OrderStatus | None:
        """The newest status Binance gave for the order, if any."""
        entry = self._orders.get(client_order_id)
        return entry.status if entry is not None else None

    def is_accepted(self, client_order_id: str) -> bool:
        entry = self._orders.get(client_order_id)
        return entry is not None and entry.venue_order_id is not None

    def working(self) -> list[tuple[str, str, str]]:
        """(client order id, symbol, Binance order id) of every order Binance acknowledged
        that has not been reported final: what polling must watch."""
        return [
            (client_order_id, entry.symbol, entry.venue_order_id)
            for client_order_id, entry in self._orders.items()
            if entry.venue_order_id is not None and not entry.final
        ]

    def pending(self) -> list[tuple[str, str]]:
        """(client order id, symbol) of orders not yet acknowledged nor final."""
        return [
            (client_order_id, entry.symbol)
            for client_order_id, entry in self._orders.items()
            if entry.venue_order_id is None and not entry.final
        ]

    # -- facts in, reports out -------------------------------------------------------------

    def apply(self, update: OrderUpdate) -> Applied:
        entry = self._orders.get(update.client_order_id)
        if entry is None or entry.final:
            return Applied([])
        coid, reports = update.client_order_id, list[OrderReport]()
        if entry.venue_order_id is None and update.status is not OrderStatus.REJECTED:
            entry.venue_order_id = update.venue_order_id
            reports.append(
                OrderAccepted(
                    client_order_id=coid, venue_order_id=update.venue_order_id, ts_ns=update.ts_ns
                )
            )
        for fill in update.fills:
            if fill.trade_id not in entry.trade_ids:
                entry.trade_ids.add(fill.trade_id)
                entry.executed += fill.qty
                reports.append(fill)
        if entry.executed < update.executed_qty:
            return Applied(reports, missing_fills=True)
        entry.status = update.status
        final = self._final_report(entry, update)
        if final is not None:
            reports.append(final)
        if update.status.is_final:
            self._finish(coid, entry)
        return Applied(reports)

    def reject(self, client_order_id: str, reason: str, ts_ns: int) -> list[OrderReport]:
        """Binance refused the order, or it was never placed: reported once, and only for
        an order Binance never acknowledged."""
        entry = self._orders.get(client_order_id)
        if entry is None or entry.final or entry.venue_order_id is not None:
            return []
        entry.status = OrderStatus.REJECTED
        self._finish(client_order_id, entry)
        return [OrderRejected(client_order_id=client_order_id, reason=reason, ts_ns=ts_ns)]

    def _final_report(self, entry: _Entry, update: OrderUpdate) -> OrderReport | None:
        coid, ts_ns, reason = update.client_order_id, update.ts_ns, update.reason
        match update.status:
            case OrderStatus.CANCELLED:
                return OrderCancelled(client_order_id=coid, reason=reason, ts_ns=ts_ns)
            case OrderStatus.EXPIRED:
                return OrderExpired(client_order_id=coid, reason=reason, ts_ns=ts_ns)
            case OrderStatus.REJECTED if entry.venue_order_id is None:
                return OrderRejected(client_order_id=coid, reason=reason or "rejected", ts_ns=ts_ns)
            case OrderStatus.REJECTED:
                # Refused after Binance acknowledged it: it is gone without more fills.
                return OrderExpired(client_order_id=coid, reason=reason or "rejected", ts_ns=ts_ns)
        # FILLED is said by the fills themselves; the others are not final.
        return None

    def _finish(self, client_order_id: str, entry: _Entry) -> None:
        entry.final = True
        self._finished.append(client_order_id)
        while len(self._finished) > self._keep_final:
            self._orders.pop(self._finished.popleft(), None)
