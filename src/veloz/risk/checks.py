"""Pre-trade checks: whether one new order fits the limits, given the book as it stands.

The exposure counts open *and in-flight* orders (taken, not yet acknowledged by the venue),
so concurrent submissions cannot race past a limit that only filled positions would show.
Each denial carries a stable reason code that the engine journals, counts and answers with.
"""

from collections.abc import Callable
from decimal import Decimal

import msgspec

from veloz.model.enums import OrderSide
from veloz.model.errors import DenialReason
from veloz.risk.limits import SymbolLimits

HUNDRED = Decimal(100)
# Read once for the hot paths: on Python 3.11 reading a member off its enum class
# (`OrderSide.BUY`) takes the slow attribute path of a class with `__getattr__`.
BUY = OrderSide.BUY


class Exposure(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    """The facts a check needs about the order's symbol and the account."""

    position_qty: Decimal  # signed, from fills
    open_buy_qty: Decimal  # what open and in-flight BUY orders may still add
    open_sell_qty: Decimal  # what open and in-flight SELL orders may still remove
    open_orders_symbol: int
    open_orders_total: int
    mark: Decimal | None  # the current market price (mid), if there is one
    free_quote: Decimal
    free_base: Decimal
    # A margin account (net position may go short) checks margin, not free balances.
    margin_leverage: Decimal | None = None
    # Read only for an order that `needs_margin`: the engine values it for those alone.
    equity: Decimal = Decimal(0)


class OrderIntent(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    symbol: str
    side: OrderSide
    qty: Decimal
    price: Decimal  # the limit price, or the reference price a market order is locked at
    is_limit: bool


class Denial(msgspec.Struct, frozen=True, kw_only=True):
    reason: DenialReason
    message: str


Check = Callable[[OrderIntent, SymbolLimits, int | None, Exposure], "Denial | None"]


def pre_trade(
    order: OrderIntent, limits: SymbolLimits, max_open_total: int | None, exposure: Exposure
) -> Denial | None:
    """The first limit `order` breaks, or None if it fits them all."""
    return run_checks(checks_for(limits, max_open_total), order, limits, max_open_total, exposure)


def worst_position(
    order: OrderIntent, position_qty: Decimal, open_buy_qty: Decimal, open_sell_qty: Decimal
) -> Decimal:
    """The position if this order and every open one on its side filled: the worst case."""
    if order.side is BUY:
        return position_qty + open_buy_qty + order.qty
    return position_qty - open_sell_qty - order.qty


def needs_margin(
    order: OrderIntent, position_qty: Decimal, open_buy_qty: Decimal, open_sell_qty: Decimal
) -> bool:
    """Whether `order` could leave a margin account holding more than it holds now: only
    such an order has its margin checked against the equity (`_margin`)."""
    worst = worst_position(order, position_qty, open_buy_qty, open_sell_qty)
    return abs(worst) > abs(position_qty)


def checks_for(limits: SymbolLimits, max_open_total: int | None) -> tuple[Check, ...]:
    """The checks that can deny an order under these limits, in the order they run. A
    check whose limits are all None passes every order, so it is left out: the risk
    engine works this out once per set of limits, not on every order."""
    checks: list[Check] = []
    if limits.min_qty is not None or limits.max_qty is not None:
        checks.append(_size)
    if limits.min_notional is not None or limits.max_notional is not None:
        checks.append(_notional)
    if limits.price_band_pct is not None:
        checks.append(_price_band)
    if limits.max_open_orders is not None or max_open_total is not None:
        checks.append(_open_orders)
    if limits.max_position_qty is not None or limits.max_position_notional is not None:
        checks.append(_position)
    checks.append(_balance)  # funds or margin: always checked
    return tuple(checks)


def run_checks(
    checks: tuple[Check, ...],
    order: OrderIntent,
    limits: SymbolLimits,
    max_open_total: int | None,
    exposure: Exposure,
) -> Denial | None:
    """The first denial of `checks` (from `checks_for(limits, max_open_total)`)."""
    for check in checks:
        denial = check(order, limits, max_open_total, exposure)
        if denial is not None:
            return denial
    return None


def _size(order: OrderIntent, limits: SymbolLimits, _: int | None, __: Exposure) -> Denial | None:
    if limits.min_qty is not None and order.qty < limits.min_qty:
        return Denial(
            reason=DenialReason.QTY_BELOW_MINIMUM,
            message=f"qty {order.qty} is below the minimum {limits.min_qty}",
        )
    if limits.max_qty is not None and order.qty > limits.max_qty:
        return Denial(
            reason=DenialReason.QTY_ABOVE_MAXIMUM,
            message=f"qty {order.qty} is above the maximum {limits.max_qty}",
        )
    return None


def _notional(
    order: OrderIntent, limits: SymbolLimits, _: int | None, __: Exposure
) -> Denial | None:
    if limits.min_notional is None and limits.max_notional is None:
        return None
    notional = order.qty * order.price
    if limits.min_notional is not None and notional < limits.min_notional:
        return Denial(
            reason=DenialReason.NOTIONAL_BELOW_MINIMUM,
            message=f"notional {notional} is below the minimum {limits.min_notional}",
        )
    if limits.max_notional is not None and notional > limits.max_notional:
        return Denial(
            reason=DenialReason.NOTIONAL_ABOVE_MAXIMUM,
            message=f"notional {notional} is above the maximum {limits.max_notional}",
        )
    return None


def _price_band(
    order: OrderIntent, limits: SymbolLimits, _: int | None, exposure: Exposure
) -> Denial | None:
    # Market orders trade at the market by definition; without a mark there is no band.
    if not order.is_limit or limits.price_band_pct is None or not exposure.mark:
        return None
    distance = abs(order.price - exposure.mark) / exposure.mark * HUNDRED
    if distance > limits.price_band_pct:
        return Denial(
            reason=DenialReason.PRICE_OUT_OF_BAND,
            message=f"price {order.price} is {distance:.2f}% from the market {exposure.mark}; "
            f"the band is {limits.price_band_pct}%",
        )
    return None


def _open_orders(
    order: OrderIntent, limits: SymbolLimits, max_open_total: int | None, exposure: Exposure
) -> Denial | None:
    if limits.max_open_orders is not None and exposure.open_orders_symbol >= limits.max_open_orders:
        return Denial(
            reason=DenialReason.MAX_OPEN_ORDERS,
            message=f"{order.symbol} already has {exposure.open_orders_symbol} open "
            f"orders (limit {limits.max_open_orders})",
        )
    if max_open_total is not None and exposure.open_orders_total >= max_open_total:
        return Denial(
            reason=DenialReason.MAX_OPEN_ORDERS,
            message=f"{exposure.open_orders_total} orders are open (limit {max_open_total})",
        )
    return None


def _position(
    order: OrderIntent, limits: SymbolLimits, _: int | None, exposure: Exposure
) -> Denial | None:
    """The position if this order and every open one on its side filled: the worst case."""
    if limits.max_position_qty is None and limits.max_position_notional is None:
        return None
    worst = worst_position(
        order, exposure.position_qty, exposure.open_buy_qty, exposure.open_sell_qty
    )
    if limits.max_position_qty is not None and abs(worst) > limits.max_position_qty:
        return Denial(
            reason=DenialReason.MAX_POSITION_EXCEEDED,
            message=f"{order.symbol} position could reach {worst} (limit "
            f"{limits.max_position_qty}, open and in-flight orders included)",
        )
    price = exposure.mark or order.price
    if (
        limits.max_position_notional is not None
        and abs(worst) * price > limits.max_position_notional
    ):
        return Denial(
            reason=DenialReason.MAX_POSITION_EXCEEDED,
            message=f"{order.symbol} position could reach a notional of "
            f"{abs(worst) * price} (limit {limits.max_position_notional})",
        )
    return None


def _balance(
    order: OrderIntent, _: SymbolLimits, __: int | None, exposure: Exposure
) -> Denial | None:
    if exposure.margin_leverage is not None:
        return _margin(order, exposure, exposure.margin_leverage)
    # Free balances already exclude what open and in-flight orders hold.
    if order.side is BUY:
        need, have, unit = order.qty * order.price, exposure.free_quote, "quote"
    else:
        need, have, unit = order.qty, exposure.free_base, "base"
    if need > have:
        return Denial(
            reason=DenialReason.INSUFFICIENT_BALANCE,
            message=f"needs {need} {unit} free, {have} is (open orders included)",
        )
    return None


def _margin(order: OrderIntent, exposure: Exposure, leverage: Decimal) -> Denial | None:
    """A margin account may hold a position worth up to `leverage` times its equity, in
    the worst case of every open order on the order's side filling too."""
    worst = worst_position(
        order, exposure.position_qty, exposure.open_buy_qty, exposure.open_sell_qty
    )
    size = abs(worst)
    if size <= abs(exposure.position_qty):
        return None  # no larger than now: nothing more to hold margin for
    need = size * (exposure.mark or order.price)
    allowed = exposure.equity * leverage
    if need > allowed:
        return Denial(
            reason=DenialReason.INSUFFICIENT_MARGIN,
            message=f"a position worth {need} would exceed {allowed} "
            f"({leverage}x the equity {exposure.equity})",
        )
    return None
