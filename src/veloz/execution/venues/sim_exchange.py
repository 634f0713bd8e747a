"""The simulated exchange: synchronous, driven by a `Clock`, deterministic.

It owns what a real exchange would own: the orders it was sent (resting ones in a
price-time book), its own account balances (a `BalanceBook`, funds locked per open order,
`starting_balances` from construction until `restore()` replaces them) and the matching
of orders against the market data it is fed. Every request is handled the moment it is
made, at `clock.time_ns()`; latency and asyncio belong to `sim.py`, which wraps this for
the live runtime, while a backtest drives it directly with a simulated clock.

Reports go, in the order they happen, to an outbox the caller empties with `drain()`.
Draining, rather than calling a handler, keeps the exchange from ever calling out: no
request can re-enter it while it is half-way through another, and each runtime decides
when its reports are delivered (the live venue on a later loop iteration, the backtest
between its own steps). Reports made while the caller handles a drained batch wait for
its next `drain()`, after the batch.

Venue ids are `<token>-O<n>` (orders) and `<token>-T<n>` (trades). The token is the
clock's time at construction in base 36 and four hex digits drawn from `id_seed`: the
same clock and seed give the same ids (a backtest is repeatable), a live clock keeps
them apart across restarts, and a different seed across two exchanges made at once.

Matching rules (see `sim_matching.py` for the arithmetic):
- An order that crosses the touch on arrival (or a MARKET order) trades at once as TAKER
  at the touch moved by `slippage_bps`, never worse than its limit, up to the displayed
  size. GTC LIMIT remainders rest; IOC and MARKET remainders expire; a FOK order fills
  completely at once or expires without a fill (after being accepted, like Binance).
- Resting orders trade as MAKER at their own limit price when a quote reaches them
  (`on_quote`), best price first, then oldest first, sharing the quote's displayed size.
- Fees are quantized to 8 places with ROUND_HALF_UP.
"""

import itertools
import random
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

from veloz.clock import Clock
from veloz.execution.venue import VenueOrder, VenueOrderState
from veloz.execution.venues.sim_config import SimVenueConfig
from veloz.execution.venues.sim_matching import (
    BPS,
    BUY,
    ZERO,
    DisplayedLiquidity,
    RestingBook,
    SimOrder,
    Slippage,
    fee_for,
    hold,
    is_marketable,
    taker_price,
    touch,
    touch_with_slippage,
    well_formed,
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
from veloz.portfolio.balances import BalanceBook

# Read once for the hot paths: on Python 3.11 reading a member off its enum class
# (`OrderSide.BUY`) takes the slow attribute path of a class with `__getattr__`.
FOK, IOC = TimeInForce.FOK, TimeInForce.IOC
MAKER, TAKER = LiquiditySide.MAKER, LiquiditySide.TAKER
FILLED = OrderStatus.FILLED


class SimExchange:
    """An exchange that matches orders against the quotes it is given, at clock time."""

    def __init__(
        self,
        config: SimVenueConfig,
        clock: Clock,
        instruments: Mapping[str, Instrument],
        quote_of: Callable[[str], QuoteTick | None],
        id_seed: int,
    ) -> None:
        self._config = config
        # The fee rate a BUY paying fees in quote must afford on top of its notional: the
        # larger rate, so a maker fill can never overdraw what was locked.
        self._buy_fee_reserve = (
            max(config.taker_fee_bps, config.maker_fee_bps) / BPS
            if config.fee_asset == "quote"
            else ZERO
        )
        self._slippage = Slippage.of(config.slippage_bps)
        self._clock = clock
        self._instruments = instruments
        self._quote_of = quote_of
        self._token = f"{_base36(clock.time_ns())}{random.Random(id_seed).getrandbits(16):04x}"
        self._ids = itertools.count(1)
        self._seqs = itertools.count(1)
        self._balances = BalanceBook(config.starting_balances)
        self._orders: dict[str, SimOrder] = {}
        self._final_ids: deque[str] = deque()
        # Per symbol; read by the backtest's bar loop (`has_resting` without the call), so
        # it is mutated, never rebound.
        self.books: dict[str, RestingBook] = {}
        self._liquidity = DisplayedLiquidity()
        self._outbox: list[OrderReport] = []

    # -- requests ----------------------------------------------------------------------

    def submit(self, request: VenueOrder) -> None:
        """Handle a new order now: reject it, or accept it, trade what crosses and rest
        or expire the remainder."""
        instrument = self._instruments.get(request.symbol)
        if instrument is None:
            self._reject(request, "unknown_symbol")
        elif request.client_order_id in self._orders:
            # Not recorded: the id belongs to the order the exchange already knows.
            self._emit(
                OrderRejected(
                    ts_ns=self._clock.time_ns(),
                    client_order_id=request.client_order_id,
                    reason="duplicate_client_order_id",
                )
            )
        elif not well_formed(request):
            self._reject(request, "invalid_order")
        else:
            quote = self._quote_of(request.symbol)
            order = self._accept(request, instrument, quote)
            if order is not None:
                self._match_arrival(order, instrument, quote)

    def cancel(self, client_order_id: str, symbol: str) -> None:
        """Cancel an open order now, or reject the cancel."""
        order = self._orders.get(client_order_id)
        if order is None or order.symbol != symbol:
            self._reject_cancel(client_order_id, "unknown_order")
        elif order.is_final:
            self._reject_cancel(client_order_id, "order_final")
        else:
            self._book(order.symbol).remove(order)
            self._finish(order, OrderStatus.CANCELLED)
            self._emit(OrderCancelled(ts_ns=self._clock.time_ns(), client_order_id=client_order_id))

    def on_quote(self, quote: QuoteTick) -> None:
        """Trade the resting orders the quote reaches."""
        book = self.books.get(quote.symbol)
        if not book:
            return
        instrument = self._instruments[quote.symbol]
        for side, orders in book.crossed_by(quote):
            for order in orders:
                qty = min(order.leaves_qty, self._liquidity.available(quote, side))
                if qty <= 0:
                    break
                self._liquidity.take(quote, side, qty)
                self._fill(order, instrument, qty, order.limit(), MAKER)
                if order.is_final:
                    book.remove(order)

    def restore(self, open_orders: Sequence[Order], balances: Sequence[Balance]) -> None:
        """Resume from what the engine's journal says the exchange held.

        Balances are taken at their totals and funds are locked again for every restored
        order, so the account looks as if the exchange had remembered it. Restored orders
        rest without new reports. Only acknowledged GTC LIMIT orders can be resting here;
        any other open order (never acknowledged, or IOC/FOK/MARKET, which finish as they
        are handled) is one this exchange does not know, so `query()` answers None for it
        and reconciliation decides. Raises (and changes nothing) if an order names an
        unknown symbol or the balances cannot cover the orders' locks.
        """
        book = BalanceBook({b.asset: b.total for b in balances})
        resting = sorted((o for o in open_orders if _can_rest(o)), key=lambda o: o.created_ts_ns)
        restored = [self._restored(order, book) for order in resting]
        self._balances = book
        self._orders = {order.client_order_id: order for order in restored}
        self._final_ids.clear()
        self.books.clear()
        for order in restored:
            self._book(order.symbol).add(order)

    # -- what the exchange knows ---------------------------------------------------------

    def query(self, client_order_id: str, symbol: str) -> VenueOrderState | None:
        order = self._orders.get(client_order_id)
        if order is None or order.symbol != symbol:
            return None
        return order.state()

    def credit(self, asset: str, amount: Decimal) -> None:
        """A deposit (or, negative, a withdrawal) made outside the engine, which it learns
        of when it next reconciles balances."""
        self._balances.set_total(asset, self._balances.total(asset) + amount)

    def open_orders(self) -> list[VenueOrderState]:
        return [order.state() for order in self._orders.values() if not order.status.is_final]

    def balances(self) -> dict[str, Decimal]:
        """Total balance per asset."""
        return {balance.asset: balance.total for balance in self._balances.snapshot()}

    def balance_snapshot(self) -> list[Balance]:
        """Free and locked per asset: what the exchange holds back for open orders."""
        return self._balances.snapshot()

    def has_resting(self, symbol: str) -> bool:
        """Whether a quote of `symbol` could trade anything (see `on_quote`)."""
        return bool(self.books.get(symbol))

    # -- reports -----------------------------------------------------------------------

    @property
    def pending_reports(self) -> int:
        """How many reports the next `drain()` returns."""
        return len(self._outbox)

    def drain(self) -> list[OrderReport]:
        """The reports made since the last drain, oldest first; the outbox is then empty."""
        reports, self._outbox = self._outbox, []
        return reports

    def _emit(self, report: OrderReport) -> None:
        self._outbox.append(report)

    # -- submit --------------------------------------------------------------------------

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
        elif quote is None or touch(order.side, quote) <= ZERO:
            self._reject(request, "no_market_data")
            return None
        else:
            order.lock_price = touch_with_slippage(order.side, quote, self._slippage)
        order.fee_reserve = self._fee_reserve(order.side)
        if self._config.margin:
            # A margin account's exposure is the engine's risk check (leverage against
            # equity): nothing is held back and a balance may go negative (a short). The
            # asset `hold` would name, without working out an amount nobody uses.
            asset = instrument.quote_asset if order.side is BUY else instrument.base_asset
            amount = ZERO
        else:
            asset, amount = hold(order, instrument, order.qty)
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
        return self._buy_fee_reserve if side is BUY else ZERO

    def _match_arrival(
        self, order: SimOrder, instrument: Instrument, quote: QuoteTick | None
    ) -> None:
        side = order.side
        if quote is not None and is_marketable(order.order_type, side, order.price, quote):
            available = self._liquidity.available(quote, side)
            if order.time_in_force is FOK and available < order.qty:
                self._expire(order, "fok_not_fillable")
                return
            qty = available if available < order.qty else order.qty  # min(order.qty, available)
            if qty > ZERO:
                self._liquidity.take(quote, side, qty)
                # A MARKET order takes the touch with slippage: the price `_accept` just
                # locked its funds at, from this same quote.
                price = (
                    order.lock_price
                    if order.price is None
                    else taker_price(side, quote, self._slippage, order.price)
                )
                self._fill(order, instrument, qty, price, TAKER)
        elif order.time_in_force is FOK:
            self._expire(order, "fok_not_fillable")
        if not order.is_final:
            self._place_remainder(order)

    def _place_remainder(self, order: SimOrder) -> None:
        if order.order_type is OrderType.MARKET:
            self._expire(order, "insufficient_liquidity")
        elif order.time_in_force is IOC:
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
        config = self._config
        bps = config.maker_fee_bps if liquidity is MAKER else config.taker_fee_bps
        fee, fee_asset = fee_for(
            instrument, order.side, qty, price, fee_bps=bps, mode=config.fee_asset
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
            self._finish(order, FILLED)
        else:
            order.status = OrderStatus.PARTIALLY_FILLED
        self._emit(fill)

    def _settle(self, order: SimOrder, instrument: Instrument, fill: OrderFilled) -> None:
        """Release this fill's share of the lock and move both assets; the fee comes out
        of whichever of the two it is charged in."""
        qty, locked = fill.qty, order.locked
        notional = qty * fill.price
        if order.side is BUY:
            paid, paid_qty = instrument.quote_asset, notional
            received, received_qty = instrument.base_asset, qty
        else:
            paid, paid_qty = instrument.base_asset, qty
            received, received_qty = instrument.quote_asset, notional
        if locked:
            release = hold(order, instrument, qty)[1]
            if locked < release:  # min(share, locked)
                release = locked
            order.locked = locked - release
        else:
            # Nothing left to release (always, in a margin account): min(share, locked) is
            # `locked` itself, as a share is never negative.
            release = locked
        paid_delta, received_delta = -paid_qty, received_qty
        fee, fee_asset = fill.fee, fill.fee_asset
        if fee_asset == paid:
            paid_delta -= fee
        elif fee_asset == received:
            received_delta -= fee
        self._balances.settle(paid, paid_delta, release=release)
        self._balances.settle(received, received_delta)

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
        if order.locked:  # nothing left after a full fill, nor ever in a margin account
            self._balances.unlock(order.lock_asset, order.locked)
            order.locked = ZERO
        self._remember_final(order)

    def _remember_final(self, order: SimOrder) -> None:
        self._orders[order.client_order_id] = order
        self._final_ids.append(order.client_order_id)
        while len(self._final_ids) > self._config.order_history_limit:
            self._orders.pop(self._final_ids.popleft(), None)

    def _reject_cancel(self, client_order_id: str, reason: str) -> None:
        self._emit(
            OrderCancelRejected(
                ts_ns=self._clock.time_ns(), client_order_id=client_order_id, reason=reason
            )
        )

    # -- helpers -----------------------------------------------------------------------

    def _book(self, symbol: str) -> RestingBook:
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = RestingBook()
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
        asset, amount = hold(restored, instrument, restored.leaves_qty)
        book.lock(asset, amount)
        restored.lock_asset, restored.locked = asset, amount
        return restored


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
    if value < 0:  # a simulated clock may start before 1970
        return "n" + _base36(-value)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while value:
        value, digit = divmod(value, 36)
        out = digits[digit] + out
    return out or "0"
