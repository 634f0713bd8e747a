"""The simulated venue: an exchange inside the process, for paper trading and tests.

It owns what a real exchange would own: the orders it was sent (resting ones in a
price-time book), its own account balances (a `BalanceBook`, funds locked per open order)
and the matching of orders against the market data the engine feeds it. Like a real
exchange it answers only through execution reports, after a configurable latency, and
never from inside `submit()`/`cancel()`.

Requests go through one queue served by one worker task, so tens of thousands of orders a
second cost one task, not one each. Reports go through one outbox flushed on a later loop
iteration, which keeps every order's reports in the order they happened.

Matching rules (see `sim_matching.py` for the arithmetic):
- An order that crosses the touch on arrival (or a MARKET order) trades at once as TAKER
  at the touch moved by `slippage_bps`, never worse than its limit, up to the displayed
  size. GTC LIMIT remainders rest; IOC and MARKET remainders expire; a FOK order fills
  completely at once or expires without a fill (after being accepted, like Binance).
- Resting orders trade as MAKER at their own limit price when a quote reaches them
  (`on_quote`), best price first, then oldest first, sharing the quote's displayed size.
- Fees are quantized to 8 places with ROUND_HALF_UP.
"""

import asyncio
import itertools
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

import msgspec

from veloz.engine.clock import Clock
from veloz.execution.venue import ReportHandler, VenueOrder, VenueOrderState
from veloz.execution.venues.sim_matching import (
    BPS,
    ONE,
    ZERO,
    DisplayedLiquidity,
    FeeAssetMode,
    RestingBook,
    SimOrder,
    fee_for,
    is_marketable,
    taker_price,
    touch_with_slippage,
)
from veloz.model.account import Balance
from veloz.model.enums import LiquiditySide, OrderSide, OrderStatus, OrderType, TimeInForce
from veloz.model.events import (
    OrderAccepted,
    OrderCancelled,
    OrderCancelRejected,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReport,
)
from veloz.model.instruments import Instrument
from veloz.model.market import QuoteTick
from veloz.model.orders import Order
from veloz.portfolio.balances import BalanceBook, order_lock

# Requests handled per worker slice before yielding to the rest of the event loop.
_SLICE = 2048


def _default_balances() -> dict[str, Decimal]:
    return {"USDT": Decimal("100000")}


class SimVenueConfig(msgspec.Struct, frozen=True, kw_only=True):
    """`latency_ms` delays every submit and cancel (0 still answers on a later loop
    iteration). `fee_asset="received"` charges fees in the asset received (Binance's
    default), `"quote"` always in the quote asset. `order_history_limit` bounds how many
    final orders are remembered for `query()` and duplicate detection."""

    latency_ms: float = 1.0
    maker_fee_bps: Decimal = Decimal("10")
    taker_fee_bps: Decimal = Decimal("10")
    slippage_bps: Decimal = Decimal("0")
    fee_asset: FeeAssetMode = "received"
    starting_balances: dict[str, Decimal] = msgspec.field(default_factory=_default_balances)
    order_history_limit: int = 100_000


class _CancelRequest(msgspec.Struct, gc=False, frozen=True):
    client_order_id: str
    symbol: str


_Request = VenueOrder | _CancelRequest


class SimVenue:
    """A `Venue` that matches orders against the quotes the engine sees."""

    name = "sim"

    def __init__(
        self,
        config: SimVenueConfig,
        clock: Clock,
        instruments: Mapping[str, Instrument],
        quote_of: Callable[[str], QuoteTick | None],
    ) -> None:
        self._config = config
        # The fee rate a BUY paying fees in quote must afford on top of its notional: the
        # larger rate, so a maker fill can never overdraw what was locked.
        self._buy_fee_reserve = (
            max(config.taker_fee_bps, config.maker_fee_bps) / BPS
            if config.fee_asset == "quote"
            else ZERO
        )
        self._clock = clock
        self._instruments = instruments
        self._quote_of = quote_of
        self._latency_s = config.latency_ms / 1000
        # Wall time makes ids unique across restarts; the random part across two venues
        # created in the same instant (two engines in one process).
        self._token = f"{_base36(time.time_ns())}{secrets.token_hex(2)}"
        self._ids = itertools.count(1)
        self._seqs = itertools.count(1)
        self._balances = BalanceBook()
        self._seeded = False
        self._orders: dict[str, SimOrder] = {}
        self._final_ids: deque[str] = deque()
        self._books: dict[str, RestingBook] = {}
        self._liquidity = DisplayedLiquidity()
        self._pending: deque[tuple[float, _Request]] = deque()
        self._outbox: deque[OrderReport] = deque()
        self._flush_scheduled = False
        self._handler: ReportHandler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------

    def set_report_handler(self, handler: ReportHandler) -> None:
        self._handler = handler

    async def connect(self) -> None:
        """Start serving requests. The first connect seeds `starting_balances` unless
        `restore()` already set the account; reconnecting keeps orders and balances."""
        if self._handler is None:
            raise RuntimeError("set_report_handler() must be called before connect()")
        if self._worker is not None:
            return
        if not self._seeded:
            self._balances = BalanceBook(self._config.starting_balances)
            self._seeded = True
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._worker = self._loop.create_task(self._run(), name="sim-venue-worker")
        self._worker.add_done_callback(self._on_worker_done)

    async def close(self) -> None:
        """Stop the worker. Requests not yet processed are dropped; reports of what
        already happened are delivered before this returns."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        worker.cancel()
        await asyncio.wait([worker])
        self._pending.clear()
        self._flush()
        self._loop = None

    def restore(self, open_orders: Sequence[Order], balances: Sequence[Balance]) -> None:
        """Seed the venue after an engine restart with what the journal says it held.

        Balances are taken at their totals and funds are locked again for every restored
        order, so the account looks as if the venue had remembered it. Restored orders
        rest without new reports. Only acknowledged GTC LIMIT orders can be resting at
        this venue; any other open order (never acknowledged, or IOC/FOK/MARKET, which
        finish as they are processed) is one this venue does not know, so `query()`
        answers None for it and reconciliation decides. Raises (and changes nothing) if
        an order names an unknown symbol or the balances cannot cover the orders' locks.
        """
        if self._worker is not None:
            raise RuntimeError("restore() must be called before connect()")
        book = BalanceBook({b.asset: b.total for b in balances})
        resting = sorted((o for o in open_orders if _can_rest(o)), key=lambda o: o.created_ts_ns)
        restored = [self._restored(order, book) for order in resting]
        self._balances = book
        self._orders = {order.client_order_id: order for order in restored}
        self._final_ids.clear()
        self._books = {}
        for order in restored:
            self._book(order.symbol).add(order)
        self._seeded = True

    # -- the Venue protocol ------------------------------------------------------------

    async def submit(self, order: VenueOrder) -> None:
        self._enqueue(order)

    async def cancel(self, client_order_id: str, symbol: str) -> None:
        self._enqueue(_CancelRequest(client_order_id, symbol))

    async def query(self, client_order_id: str, symbol: str) -> VenueOrderState | None:
        self._require_connected()
        order = self._orders.get(client_order_id)
        if order is None or order.symbol != symbol:
            return None
        return order.state()

    async def balances(self) -> dict[str, Decimal]:
        self._require_connected()
        return {balance.asset: balance.total for balance in self._balances.snapshot()}

    @property
    def connected(self) -> bool:
        return self._loop is not None and self._worker is not None and not self._worker.done()

    async def ping(self) -> float:
        self._require_connected()
        return self._latency_s

    def balance_snapshot(self) -> list[Balance]:
        """Free and locked per asset: what the venue holds back for open orders."""
        return self._balances.snapshot()

    def on_quote(self, quote: QuoteTick) -> None:
        """Trade resting orders the quote reaches. The engine calls this for every quote;
        a venue that is not connected does not trade."""
        book = self._books.get(quote.symbol)
        if not book or self._loop is None:
            return
        instrument = self._instruments[quote.symbol]
        for side, orders in book.crossed_by(quote):
            for order in orders:
                qty = min(order.leaves_qty, self._liquidity.available(quote, side))
                if qty <= 0:
                    break
                self._liquidity.take(quote, side, qty)
                self._fill(order, instrument, qty, order.limit(), LiquiditySide.MAKER)
                if order.is_final:
                    book.remove(order)

    # -- request queue and worker ------------------------------------------------------

    def _require_connected(self) -> asyncio.AbstractEventLoop:
        if self._worker is None or self._loop is None:
            raise ConnectionError("sim venue is not connected")
        if self._worker.done():
            raise ConnectionError("sim venue worker has stopped; see the logged error")
        return self._loop

    def _enqueue(self, request: _Request) -> None:
        loop = self._require_connected()
        self._pending.append((loop.time() + self._latency_s, request))
        self._wakeup.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            delay = self._pending[0][0] - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            self._process_due(loop.time())
            # Yield between slices so a flood of requests cannot starve the rest of the loop.
            await asyncio.sleep(0)

    def _process_due(self, now: float) -> None:
        for _ in range(_SLICE):
            if not self._pending or self._pending[0][0] > now:
                return
            _, request = self._pending.popleft()
            if isinstance(request, VenueOrder):
                self._on_submit(request)
            else:
                self._on_cancel(request)

    def _on_worker_done(self, worker: asyncio.Task[None]) -> None:
        if worker.cancelled() or self._loop is None:
            return
        error = worker.exception()
        if error is not None:
            # Loud, not silent: every later request raises ConnectionError too.
            self._loop.call_exception_handler(
                {"message": "sim venue worker died", "exception": error, "task": worker}
            )

    # -- reports -----------------------------------------------------------------------

    def _emit(self, report: OrderReport) -> None:
        self._outbox.append(report)
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        handler = self._handler
        while self._outbox and handler is not None:
            report = self._outbox.popleft()
            try:
                handler(report)
            except Exception as error:
                # The handler is the engine's; its failure must not stop the venue, and
                # is reported the way asyncio reports a failing callback.
                if self._loop is not None:
                    self._loop.call_exception_handler(
                        {"message": "sim venue report handler raised", "exception": error}
                    )

    # -- submit --------------------------------------------------------------------------

    def _on_submit(self, request: VenueOrder) -> None:
        instrument = self._instruments.get(request.symbol)
        if instrument is None:
            self._reject(request, "unknown_symbol")
        elif request.client_order_id in self._orders:
            # Not recorded: the id belongs to the order the venue already knows.
            self._emit(
                OrderRejected(
                    ts_ns=self._clock.time_ns(),
                    client_order_id=request.client_order_id,
                    reason="duplicate_client_order_id",
                )
            )
        elif not _well_formed(request):
            self._reject(request, "invalid_order")
        else:
            quote = self._quote_of(request.symbol)
            order = self._accept(request, instrument, quote)
            if order is not None:
                self._match_arrival(order, instrument, quote)

    def _reject(self, request: VenueOrder, reason: str) -> None:
        # Remembered so query() can say why, unless the id already names another order.
        if request.client_order_id not in self._orders:
            order = SimOrder.from_request(request, venue_order_id="", seq=next(self._seqs))
            order.status, order.reason = OrderStatus.REJECTED, reason
            self._remember_final(order)
        self._emit(
            OrderRejected(
                ts_ns=self._clock.time_ns(),
                client_order_id=request.client_order_id,
                reason=reason,
            )
        )

    def _accept(
        self, request: VenueOrder, instrument: Instrument, quote: QuoteTick | None
    ) -> SimOrder | None:
        """Lock the order's funds and acknowledge it, or reject it and return None."""
        order = SimOrder.from_request(request, venue_order_id="", seq=next(self._seqs))
        if order.price is not None:
            order.lock_price = order.price
        elif quote is None or _touch(order.side, quote) <= 0:
            self._reject(request, "no_market_data")
            return None
        else:
            order.lock_price = touch_with_slippage(order.side, quote, self._config.slippage_bps)
        order.fee_reserve = self._fee_reserve(order.side)
        asset, amount = _hold(order, instrument, order.qty)
        if not self._balances.can_lock(asset, amount):
            self._reject(request, "insufficient_balance")
            return None
        self._balances.lock(asset, amount)
        order.lock_asset, order.locked = asset, amount
        order.venue_order_id = self._new_id("O")
        self._orders[order.client_order_id] = order
        self._emit(
            OrderAccepted(
                ts_ns=self._clock.time_ns(),
                client_order_id=order.client_order_id,
                venue_order_id=order.venue_order_id,
            )
        )
        return order

    def _fee_reserve(self, side: OrderSide) -> Decimal:
        return self._buy_fee_reserve if side is OrderSide.BUY else ZERO

    def _match_arrival(
        self, order: SimOrder, instrument: Instrument, quote: QuoteTick | None
    ) -> None:
        if quote is not None and is_marketable(order.order_type, order.side, order.price, quote):
            available = self._liquidity.available(quote, order.side)
            if order.time_in_force is TimeInForce.FOK and available < order.qty:
                self._expire(order, "fok_not_fillable")
                return
            qty = min(order.qty, available)
            if qty > 0:
                self._liquidity.take(quote, order.side, qty)
                price = taker_price(order.side, quote, self._config.slippage_bps, order.price)
                self._fill(order, instrument, qty, price, LiquiditySide.TAKER)
        elif order.time_in_force is TimeInForce.FOK:
            self._expire(order, "fok_not_fillable")
        if not order.is_final:
            self._place_remainder(order)

    def _place_remainder(self, order: SimOrder) -> None:
        if order.order_type is OrderType.MARKET:
            self._expire(order, "insufficient_liquidity")
        elif order.time_in_force is TimeInForce.IOC:
            self._expire(order, "ioc_remainder")
        else:
            self._book(order.symbol).add(order)

    # -- fills and final states ------------------------------------------------------

    def _fill(
        self,
        order: SimOrder,
        instrument: Instrument,
        qty: Decimal,
        price: Decimal,
        liquidity: LiquiditySide,
    ) -> None:
        bps = (
            self._config.maker_fee_bps
            if liquidity is LiquiditySide.MAKER
            else self._config.taker_fee_bps
        )
        fee, fee_asset = fee_for(
            instrument, order.side, qty, price, fee_bps=bps, mode=self._config.fee_asset
        )
        fill = OrderFilled(
            ts_ns=self._clock.time_ns(),
            client_order_id=order.client_order_id,
            trade_id=self._new_id("T"),
            qty=qty,
            price=price,
            fee=fee,
            fee_asset=fee_asset,
            liquidity=liquidity,
            symbol=order.symbol,
            side=order.side,
        )
        self._settle(order, instrument, fill)
        order.executed_qty += qty
        order.fills.append(fill)
        if order.executed_qty == order.qty:
            self._finish(order, OrderStatus.FILLED)
        else:
            order.status = OrderStatus.PARTIALLY_FILLED
        self._emit(fill)

    def _settle(self, order: SimOrder, instrument: Instrument, fill: OrderFilled) -> None:
        """Release this fill's share of the lock and move both assets; the fee comes out
        of whichever of the two it is charged in."""
        notional = fill.qty * fill.price
        if order.side is OrderSide.BUY:
            paid, paid_qty = instrument.quote_asset, notional
            received, received_qty = instrument.base_asset, fill.qty
        else:
            paid, paid_qty = instrument.base_asset, fill.qty
            received, received_qty = instrument.quote_asset, notional
        release = min(_hold(order, instrument, fill.qty)[1], order.locked)
        order.locked -= release
        paid_fee = fill.fee if fill.fee_asset == paid else ZERO
        received_fee = fill.fee if fill.fee_asset == received else ZERO
        self._balances.settle(paid, -paid_qty - paid_fee, release=release)
        self._balances.settle(received, received_qty - received_fee)

    def _expire(self, order: SimOrder, reason: str) -> None:
        self._finish(order, OrderStatus.EXPIRED, reason)
        self._emit(
            OrderExpired(
                ts_ns=self._clock.time_ns(), client_order_id=order.client_order_id, reason=reason
            )
        )

    def _finish(self, order: SimOrder, status: OrderStatus, reason: str = "") -> None:
        """Make the order final and give back whatever it still holds."""
        order.status, order.reason = status, reason
        self._balances.unlock(order.lock_asset, order.locked)
        order.locked = ZERO
        self._remember_final(order)

    def _remember_final(self, order: SimOrder) -> None:
        self._orders[order.client_order_id] = order
        self._final_ids.append(order.client_order_id)
        while len(self._final_ids) > self._config.order_history_limit:
            self._orders.pop(self._final_ids.popleft(), None)

    # -- cancel ------------------------------------------------------------------------

    def _on_cancel(self, request: _CancelRequest) -> None:
        order = self._orders.get(request.client_order_id)
        if order is None or order.symbol != request.symbol:
            self._reject_cancel(request.client_order_id, "unknown_order")
        elif order.is_final:
            self._reject_cancel(request.client_order_id, "order_final")
        else:
            self._book(order.symbol).remove(order)
            self._finish(order, OrderStatus.CANCELLED)
            self._emit(
                OrderCancelled(ts_ns=self._clock.time_ns(), client_order_id=order.client_order_id)
            )

    def _reject_cancel(self, client_order_id: str, reason: str) -> None:
        self._emit(
            OrderCancelRejected(
                ts_ns=self._clock.time_ns(), client_order_id=client_order_id, reason=reason
            )
        )

    # -- helpers -----------------------------------------------------------------------

    def _book(self, symbol: str) -> RestingBook:
        book = self._books.get(symbol)
        if book is None:
            book = self._books[symbol] = RestingBook()
        return book

    def _new_id(self, kind: str) -> str:
        return f"{self._token}-{kind}{next(self._ids)}"

    def _restored(self, order: Order, book: BalanceBook) -> SimOrder:
        instrument = self._instruments.get(order.symbol)
        if instrument is None:
            raise ValueError(f"cannot restore {order.client_order_id}: unknown {order.symbol}")
        assert order.venue_order_id is not None and order.limit_price is not None  # _can_rest
        restored = SimOrder.from_request(
            VenueOrder.of(order), venue_order_id=order.venue_order_id, seq=next(self._seqs)
        )
        if order.executed_qty:
            restored.status = OrderStatus.PARTIALLY_FILLED
        restored.executed_qty = order.executed_qty
        restored.lock_price = order.limit_price
        restored.fee_reserve = self._fee_reserve(order.side)
        asset, amount = _hold(restored, instrument, restored.leaves_qty)
        book.lock(asset, amount)
        restored.lock_asset, restored.locked = asset, amount
        return restored


def _hold(order: SimOrder, instrument: Instrument, qty: Decimal) -> tuple[str, Decimal]:
    """The funds `qty` of the order holds back: `order_lock` plus any fee reserve."""
    asset, amount = order_lock(instrument, order.side, qty, order.lock_price)
    return asset, amount * (ONE + order.fee_reserve)


def _touch(side: OrderSide, quote: QuoteTick) -> Decimal:
    return quote.ask if side is OrderSide.BUY else quote.bid


def _well_formed(request: VenueOrder) -> bool:
    """What any exchange refuses outright: a non-positive or non-finite quantity or
    price, or a LIMIT order without a price. (A MARKET order's price is ignored.)"""
    if not request.qty.is_finite() or request.qty <= 0:
        return False
    if request.order_type is OrderType.MARKET:
        return True
    return request.price is not None and request.price.is_finite() and request.price > 0


def _can_rest(order: Order) -> bool:
    return (
        not order.is_final
        and order.venue_order_id is not None
        and order.order_type is OrderType.LIMIT
        and order.time_in_force is TimeInForce.GTC
        and order.limit_price is not None
        and order.executed_qty < order.order_qty
    )


def _base36(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while value:
        value, digit = divmod(value, 36)
        out = digits[digit] + out
    return out or "0"
