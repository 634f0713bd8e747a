"""The OrderManager: every order the engine knows, indexed by client order id and by
status, changed only by applying events. No I/O; the engine journals around it."""

from collections import Counter, OrderedDict, defaultdict
from collections.abc import Iterable
from decimal import Decimal

from veloz.model.enums import FINAL_STATUSES, OPEN_STATUSES, OrderSide, OrderStatus
from veloz.model.errors import CommandRejected, ErrorCode, InvalidTransition
from veloz.model.events import OrderEvent, OrderSubmitted
from veloz.model.orders import Order
from veloz.model.sizes import ItemSize

# Read once for the hot paths: on Python 3.11 reading a member off its enum class
# (`OrderSide.BUY`) takes the slow attribute path of a class with `__getattr__`.
BUY, SELL = OrderSide.BUY, OrderSide.SELL
_ZERO = Decimal(0)


class OrderManager:
    """Orders in memory: all open ones, and the most recent `retained_final` final ones,
    fewer if they would take more than `retained_final_bytes` (estimated; the engine's
    share of VELOZ_MEMORY_POOL_SIZE). Older final orders live in the journal and the
    history store."""

    def __init__(
        self, retained_final: int = 20_000, retained_final_bytes: int | None = None
    ) -> None:
        self._retained_final = retained_final
        self._final_cap = retained_final
        self._final_bytes = retained_final_bytes
        self._final_size = ItemSize()
        self._clear()

    @property
    def final_bytes_used(self) -> int:
        """What the retained final orders take, estimated."""
        return len(self._final) * self._final_size.bytes

    def _sized(self, order: Order) -> None:
        """Count a final order toward the size estimate, and fit the cap to it."""
        if self._final_size.observe(order) and self._final_bytes is not None:
            fit = self._final_bytes // self._final_size.bytes
            self._final_cap = min(self._retained_final, max(1, fit))

    def _clear(self) -> None:
        self._orders: dict[str, Order] = {}
        self._by_status: dict[OrderStatus, dict[str, Order]] = {s: {} for s in OrderStatus}
        # Final orders in the order they became final, for eviction oldest first.
        self._final: OrderedDict[str, None] = OrderedDict()
        # Kept, not summed: asked for on every journal append and every pre-trade check.
        self._open_count = 0
        self._open_by_symbol: Counter[str] = Counter()
        self._leaves: dict[tuple[str, OrderSide], Decimal] = defaultdict(Decimal)

    # -- queries -----------------------------------------------------------------------

    def get(self, client_order_id: str) -> Order | None:
        return self._orders.get(client_order_id)

    def __len__(self) -> int:
        return len(self._orders)

    def with_status(self, statuses: Iterable[OrderStatus]) -> list[Order]:
        return [order for s in statuses for order in self._by_status[s].values()]

    def open_orders(self) -> list[Order]:
        return self.with_status(OPEN_STATUSES)

    def open_count(self, symbol: str | None = None) -> int:
        return self._open_count if symbol is None else self._open_by_symbol[symbol]

    def open_qty(self, symbol: str, side: OrderSide) -> Decimal:
        """What open and in-flight orders of `symbol` on `side` may still execute."""
        return self._leaves[(symbol, side)]

    def open_exposure(self, symbol: str) -> tuple[Decimal, Decimal, int, int]:
        """`open_qty` of both sides, `open_count(symbol)` and `open_count()` in one call,
        as every pre-trade check asks for them."""
        leaves = self._leaves
        return (
            leaves[(symbol, BUY)],
            leaves[(symbol, SELL)],
            self._open_by_symbol[symbol],
            self._open_count,
        )

    def counts(self) -> dict[OrderStatus, int]:
        return {status: len(orders) for status, orders in self._by_status.items()}

    def all_orders(self) -> list[Order]:
        return list(self._orders.values())

    # -- changes -----------------------------------------------------------------------

    def existing_for(self, event: OrderSubmitted) -> Order | None:
        """The order a resubmission refers to, or None for a new id. The same id with
        different parameters is refused: it cannot be the same order."""
        existing = self._orders.get(event.client_order_id)
        if existing is None:
            return None
        if not existing.same_request(event):
            raise CommandRejected(
                f"client_order_id {event.client_order_id} is already used by a different order",
                code=ErrorCode.DUPLICATE_CLIENT_ORDER_ID,
            )
        return existing

    def add(self, event: OrderSubmitted) -> Order:
        if event.client_order_id in self._orders:
            raise InvalidTransition(
                f"order {event.client_order_id} already exists", code=ErrorCode.DUPLICATE_ORDER
            )
        order = Order.from_submitted(event)
        self._orders[order.client_order_id] = order
        self._by_status[order.status][order.client_order_id] = order
        self._count_open(order, +1)
        return order

    def forget(self, client_order_id: str) -> None:
        """Drop an order whose submission never became durable: it was never
        acknowledged nor sent, so as far as anyone knows it never existed."""
        order = self._orders.pop(client_order_id, None)
        if order is not None:
            self._by_status[order.status].pop(client_order_id, None)
            if order.is_final:
                self._final.pop(client_order_id, None)
            else:
                self._count_open(order, -1)

    def check(self, event: OrderEvent) -> Order:
        """The order `event` would change; raises InvalidTransition if it cannot."""
        order = self._known(event)
        order.check(event)
        return order

    def apply(self, event: OrderEvent) -> Order:
        # `_known(event)`, called only to raise: an Order is always true.
        order = self._orders.get(event.client_order_id) or self._known(event)
        before, executed_before = order.status, order.executed_qty
        order.apply(event)  # checks the event first: a refused one changes nothing
        status = order.status
        # What the order may still execute moves only with a fill or once it is final:
        # not for an acknowledgement or a cancel request, the other half of the reports.
        if order.executed_qty is not executed_before or (
            status in FINAL_STATUSES and before not in FINAL_STATUSES
        ):
            leaves_before = _ZERO if before in FINAL_STATUSES else order.order_qty - executed_before
            self._leaves[(order.symbol, order.side)] += order.leaves_qty - leaves_before
        if status is not before:
            client_order_id = order.client_order_id
            del self._by_status[before][client_order_id]
            self._by_status[status][client_order_id] = order
            if status in FINAL_STATUSES:
                self._final[client_order_id] = None
                self._open_count -= 1
                self._open_by_symbol[order.symbol] -= 1
                self._sized(order)
                if len(self._final) > self._final_cap:
                    self._evict()
        return order

    def _known(self, event: OrderEvent) -> Order:
        order = self._orders.get(event.client_order_id)
        if order is None:
            raise InvalidTransition(
                f"{type(event).__name__} for unknown order {event.client_order_id}",
                code=ErrorCode.UNKNOWN_ORDER,
            )
        return order

    def _count_open(self, order: Order, sign: int) -> None:
        self._open_count += sign
        self._open_by_symbol[order.symbol] += sign
        leaves = order.leaves_qty
        # Added or taken off as it is: an int times a Decimal converts the int first.
        self._leaves[(order.symbol, order.side)] += leaves if sign > 0 else -leaves

    def _evict(self) -> None:
        while len(self._final) > self._final_cap:
            client_order_id, _ = self._final.popitem(last=False)
            order = self._orders.pop(client_order_id)
            del self._by_status[order.status][client_order_id]

    # -- checkpoints -------------------------------------------------------------------

    def snapshot(self) -> list[Order]:
        """Every order held: open ones, then final ones in the order they became final
        (restore rebuilds the eviction order from it)."""
        return self.open_orders() + [self._orders[i] for i in self._final]

    def restore(self, orders: Iterable[Order]) -> None:
        self._clear()
        for order in orders:
            self._orders[order.client_order_id] = order
            self._by_status[order.status][order.client_order_id] = order
            if order.is_final:
                self._final[order.client_order_id] = None
                self._sized(order)
            else:
                self._count_open(order, +1)
        self._evict()
