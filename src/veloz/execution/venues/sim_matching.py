"""Matching for the simulated venue: an order's venue-side record, the book of resting
orders of one symbol in price-time priority, the displayed liquidity a quote offers, what
an order must look like, and the price, fee and funds arithmetic of a fill.

Pure and synchronous: no balances, no reports, no clock, no asyncio. `sim_exchange.py`
owns those and calls in here to decide what trades, at what price and holding what.
"""

import bisect
from collections.abc import Iterable
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Literal

import msgspec

from veloz.execution.venue import VenueOrder, VenueOrderState
from veloz.model.enums import FINAL_STATUSES, OrderSide, OrderStatus, OrderType, TimeInForce
from veloz.model.events import OrderFilled
from veloz.model.instruments import Instrument
from veloz.model.market import QuoteTick
from veloz.portfolio.balances import order_lock

ZERO = Decimal(0)
ONE = Decimal(1)
BPS = Decimal(10_000)
# Fees are quantized to 8 places (the precision Binance reports commissions in) with
# ROUND_HALF_UP, so a fee of exactly half a unit in the last place is charged, not waived.
FEE_QUANTUM = Decimal("0.00000001")

FeeAssetMode = Literal["received", "quote"]

# Read once for the hot paths: on Python 3.11 reading a member off its enum class
# (`OrderSide.BUY`) takes the slow attribute path of a class with `__getattr__`.
BUY = OrderSide.BUY
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET


class SimOrder(msgspec.Struct, gc=False, kw_only=True):
    """What the venue remembers of one order.

    Funds are held as `order_lock(instrument, side, qty, lock_price) * (1 + fee_reserve)`;
    `locked` is what is still held, so a fill releases exactly its share and the final
    report releases the rest.
    """

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: OrderSide
    order_type: OrderType
    time_in_force: TimeInForce
    qty: Decimal
    price: Decimal | None
    seq: int
    status: OrderStatus = OrderStatus.ACCEPTED
    executed_qty: Decimal = ZERO
    lock_asset: str = ""
    lock_price: Decimal = ZERO
    fee_reserve: Decimal = ZERO
    locked: Decimal = ZERO
    fills: list[OrderFilled] = msgspec.field(default_factory=list)
    reason: str = ""

    @classmethod
    def from_request(cls, request: VenueOrder, *, venue_order_id: str, seq: int) -> "SimOrder":
        return cls(
            client_order_id=request.client_order_id,
            venue_order_id=venue_order_id,
            symbol=request.symbol,
            side=request.side,
            order_type=request.order_type,
            time_in_force=request.time_in_force,
            qty=request.qty,
            # A MARKET order's price, if any, means nothing to the venue.
            price=request.price if request.order_type is LIMIT else None,
            seq=seq,
        )

    @property
    def leaves_qty(self) -> Decimal:
        return ZERO if self.status in FINAL_STATUSES else self.qty - self.executed_qty

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def limit(self) -> Decimal:
        """The limit price of an order that can rest."""
        if self.price is None:
            raise ValueError(f"order {self.client_order_id} has no limit price and cannot rest")
        return self.price

    def state(self) -> VenueOrderState:
        return VenueOrderState(
            client_order_id=self.client_order_id,
            venue_order_id=self.venue_order_id,
            status=self.status,
            executed_qty=self.executed_qty,
            fills=list(self.fills),
            reason=self.reason,
            symbol=self.symbol,
            side=self.side,
            order_qty=self.qty,
            price=self.price,
        )


def _arrival(order: SimOrder) -> int:
    return order.seq


class RestingBook:
    """Resting orders of one symbol: per side, price levels best first, each level in
    arrival order (price-time priority). Levels are found by bisecting plain prices, so adding an
    order costs a dict lookup and an append, not a sort with a key function."""

    def __init__(self) -> None:
        self._levels: dict[OrderSide, dict[Decimal, list[SimOrder]]] = {
            OrderSide.BUY: {},
            OrderSide.SELL: {},
        }
        # Sorted ascending; bids are read from the end (best = highest), asks from the start.
        self._prices: dict[OrderSide, list[Decimal]] = {OrderSide.BUY: [], OrderSide.SELL: []}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, order: SimOrder) -> None:
        price = order.limit()
        levels = self._levels[order.side]
        level = levels.get(price)
        if level is None:
            level = levels[price] = []
            bisect.insort(self._prices[order.side], price)
        if not level or level[-1].seq < order.seq:
            level.append(order)
        else:  # restored orders may arrive out of sequence: time priority is by seq
            bisect.insort(level, order, key=_arrival)
        self._count += 1

    def remove(self, order: SimOrder) -> None:
        price = order.limit()
        levels = self._levels[order.side]
        level = levels.get(price)
        if level is None or order not in level:
            return
        level.remove(order)
        self._count -= 1
        if not level:
            del levels[price]
            prices = self._prices[order.side]
            del prices[bisect.bisect_left(prices, price)]

    def crossed_by(self, quote: QuoteTick) -> list[tuple[OrderSide, list[SimOrder]]]:
        """Per side, the resting orders the quote reaches, in priority order: bids at or
        above the ask, asks at or below the bid. Copies, so the caller may remove orders."""
        bid_prices = self._prices[OrderSide.BUY]
        ask_prices = self._prices[OrderSide.SELL]
        crossing_bids = reversed(bid_prices[bisect.bisect_left(bid_prices, quote.ask) :])
        crossing_asks = ask_prices[: bisect.bisect_right(ask_prices, quote.bid)]
        return [
            (OrderSide.BUY, self._orders_at(OrderSide.BUY, crossing_bids)),
            (OrderSide.SELL, self._orders_at(OrderSide.SELL, crossing_asks)),
        ]

    def _orders_at(self, side: OrderSide, prices: Iterable[Decimal]) -> list[SimOrder]:
        levels = self._levels[side]
        return [order for price in prices for order in levels[price]]


class DisplayedLiquidity:
    """How much of each quote's displayed size our own fills have used up.

    A quote shows one size per side; every order that trades against that same quote,
    resting or incoming, shares it, so a burst of orders cannot take more than the book
    showed. A new quote shows fresh size. Only the latest quote per symbol and side is
    remembered, so memory stays bounded by the number of symbols.
    """

    def __init__(self) -> None:
        self._taken: dict[tuple[str, OrderSide], tuple[QuoteTick, Decimal]] = {}

    def available(self, quote: QuoteTick, side: OrderSide) -> Decimal:
        """What an order on `side` (BUY takes the ask) can still trade against `quote`."""
        shown = quote.ask_size if side is BUY else quote.bid_size
        taken = self._taken.get((quote.symbol, side))
        if taken is not None and taken[0] is quote:
            shown -= taken[1]
        return ZERO if shown < ZERO else shown  # max(shown, ZERO)

    def take(self, quote: QuoteTick, side: OrderSide, qty: Decimal) -> None:
        key = (quote.symbol, side)
        taken = self._taken.get(key)
        before = taken[1] if taken is not None and taken[0] is quote else ZERO
        self._taken[key] = (quote, before + qty)


def is_marketable(
    order_type: OrderType, side: OrderSide, price: Decimal | None, quote: QuoteTick
) -> bool:
    """Whether the order trades on arrival against the touch of `quote`."""
    if order_type is MARKET:
        return True
    if price is None:
        return False
    return price >= quote.ask if side is BUY else price <= quote.bid


class Slippage(msgspec.Struct, gc=False, frozen=True):
    """What a taker's touch is multiplied by on each side, `slippage_bps` against it: a
    constant of the venue's config, worked out once rather than on every fill."""

    buy: Decimal
    sell: Decimal

    @classmethod
    def of(cls, slippage_bps: Decimal) -> "Slippage":
        return cls(ONE + slippage_bps / BPS, ONE - slippage_bps / BPS)


def touch_with_slippage(side: OrderSide, quote: QuoteTick, slippage: Slippage) -> Decimal:
    """The price a taker gets: the touch it trades against, moved against it by slippage."""
    if side is BUY:
        return quote.ask * slippage.buy
    return quote.bid * slippage.sell


def taker_price(
    side: OrderSide, quote: QuoteTick, slippage: Slippage, limit: Decimal | None
) -> Decimal:
    """The taker fill price, never worse than the order's limit price."""
    price = touch_with_slippage(side, quote, slippage)
    if limit is None:
        return price
    return min(price, limit) if side is BUY else max(price, limit)


def fee_for(
    instrument: Instrument,
    side: OrderSide,
    qty: Decimal,
    price: Decimal,
    *,
    fee_bps: Decimal,
    mode: FeeAssetMode,
) -> tuple[Decimal, str]:
    """The fee of a fill and its asset: Binance charges in the asset received (base for a
    BUY) unless told to charge the quote asset."""
    if mode == "received" and side is BUY:
        fee, asset = qty * fee_bps / BPS, instrument.base_asset
    else:
        fee, asset = qty * price * fee_bps / BPS, instrument.quote_asset
    # The rounding passed positionally: as a keyword it costs as much again to parse.
    return fee.quantize(FEE_QUANTUM, ROUND_HALF_UP), asset


def touch(side: OrderSide, quote: QuoteTick) -> Decimal:
    """The side of `quote` an order on `side` trades against: the ask for a BUY."""
    return quote.ask if side is BUY else quote.bid


def hold(order: SimOrder, instrument: Instrument, qty: Decimal) -> tuple[str, Decimal]:
    """The funds `qty` of the order holds back: `order_lock` plus any fee reserve."""
    asset, amount = order_lock(instrument, order.side, qty, order.lock_price)
    if not order.fee_reserve:
        return asset, amount
    # The fee is charged rounded half up to FEE_QUANTUM, so the reserve for it is rounded
    # up to the same quantum: what is held always covers what is charged.
    reserve = (amount * order.fee_reserve).quantize(FEE_QUANTUM, ROUND_CEILING)
    return asset, amount + reserve


def well_formed(request: VenueOrder) -> bool:
    """What any exchange refuses outright: a non-positive or non-finite quantity or
    price, or a LIMIT order without a price. (A MARKET order's price is ignored.)"""
    if not request.qty.is_finite() or request.qty <= ZERO:
        return False
    if request.order_type is MARKET:
        return True
    return request.price is not None and request.price.is_finite() and request.price > ZERO
